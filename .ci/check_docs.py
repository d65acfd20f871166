#!/usr/bin/env python3
"""Build the documentation site and check every page in headless Chromium.

    python .ci/check_docs.py [--site site] [--screenshots DIR] [--no-build]

1. ``mkdocs build --strict`` (warnings are errors: broken links and anchors in the Markdown,
   pages missing from the navigation, docstrings mkdocstrings cannot read).
2. Serves the site on 127.0.0.1 and opens every page in Chromium (``--headless
   --dump-dom``, flags that work on a closed network). A script added to each served page
   records, once the page has loaded, which images did not decode. Each page must have
   rendered a title and a main heading, show as many code blocks as its Markdown has fenced
   blocks, have every image decoded, and every link inside the site must lead to a page or
   file that exists, at an anchor that exists.
3. With ``--screenshots DIR``, PNG screenshots of the home page and of an API page.

Exit status 0 when every page passes, 1 otherwise (each failure printed), 2 when Chromium
is missing (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import functools
import html.parser
import http.server
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE = (b"<script>addEventListener('load',()=>{const bad=[...document.images].filter(i=>!i.complete||!i.naturalWidth)"
         b".map(i=>i.getAttribute('src'));document.documentElement.setAttribute('data-broken-images',bad.join(' '));"
         b"document.documentElement.setAttribute('data-loaded','yes')});</script>")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=10000"]  # fmt: skip


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the site, adding the image probe to every HTML page."""

    def log_message(self, *args):
        pass

    def send_head(self):
        path = self.translate_path(self.path)
        if os.path.isdir(path):
            path = os.path.join(path, "index.html")
        if not path.endswith(".html") or not os.path.exists(path):
            return super().send_head()
        body = open(path, "rb").read().replace(b"</body>", PROBE + b"</body>")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        import io

        return io.BytesIO(body)


class Page(html.parser.HTMLParser):
    """What a rendered page holds: ids, links, images, code blocks, headings."""

    def __init__(self):
        super().__init__()
        self.ids, self.links, self.images = set(), [], []
        self.code_blocks = self.h1 = 0
        self.title, self._in_title, self.root = "", False, {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "html":
            self.root = attrs
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "pre":
            self.code_blocks += 1
        if tag == "h1":
            self.h1 += 1
        self._in_title = tag == "title"

    def handle_data(self, data):
        if self._in_title:
            self.title += data

    def handle_endtag(self, tag):
        self._in_title = False


def render(chromium, url, profile):
    command = [chromium, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    page = Page()
    page.feed(result.stdout)
    return page


def fenced_blocks(markdown_path):
    text = open(markdown_path, encoding="utf-8").read()
    return len(re.findall(r"^\s*```", text, re.M)) // 2


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", default=os.path.join(ROOT, "site"))
    parser.add_argument("--screenshots", help="folder for PNG screenshots of the home page and an API page")
    parser.add_argument("--no-build", action="store_true", help="check an already built site")
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("check_docs: Chromium is not installed (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    if not args.no_build:
        subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", args.site], cwd=ROOT, check=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=args.site))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    pages = sorted(os.path.relpath(os.path.join(d, f), args.site) for d, _, files in os.walk(args.site)
                   for f in files if f == "index.html" and "assets" not in d and "search" not in d)  # fmt: skip
    failures, rendered = [], {}
    with tempfile.TemporaryDirectory() as profile:
        for rel in pages:
            url = base + rel[: -len("index.html")]
            page = rendered[rel] = render(chromium, url, profile)
            source = os.path.join(ROOT, "docs", (rel[: -len("/index.html")] or "index") + ".md")
            problems = []
            if page.root.get("data-loaded") != "yes":
                problems.append("did not finish loading")
            if not page.title.strip() or page.h1 < 1:
                problems.append("no title or main heading")
            if page.root.get("data-broken-images"):
                problems.append(f"images not decoded: {page.root['data-broken-images']}")
            if os.path.exists(source) and page.code_blocks < fenced_blocks(source):
                problems.append(f"{page.code_blocks} code blocks shown, {fenced_blocks(source)} in {source}")
            for src in page.images:
                if not os.path.exists(os.path.join(args.site, os.path.dirname(rel), urllib.parse.urlparse(src).path)):
                    problems.append(f"image missing: {src}")
            if problems:
                failures.append(f"{url}: " + "; ".join(problems))
        for rel, page in rendered.items():
            for href in page.links:
                parts = urllib.parse.urlparse(href)
                if parts.scheme or href.startswith("mailto:"):
                    continue
                target = os.path.normpath(os.path.join(os.path.dirname(rel), parts.path)) if parts.path else rel
                if os.path.isdir(os.path.join(args.site, target)):
                    target = os.path.join(target, "index.html")
                if not os.path.exists(os.path.join(args.site, target)):
                    failures.append(f"{base}{rel}: broken link {href}")
                elif parts.fragment and target in rendered and parts.fragment not in rendered[target].ids:
                    failures.append(f"{base}{rel}: link {href}: no anchor #{parts.fragment} in {target}")
        if args.screenshots:
            os.makedirs(args.screenshots, exist_ok=True)
            for name, path in (("home.png", ""), ("api-nn.png", "api/nn/")):
                out = os.path.abspath(os.path.join(args.screenshots, name))
                subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", "--window-size=1280,1000",
                                f"--screenshot={out}", base + path], capture_output=True, timeout=120)  # fmt: skip
    server.shutdown()
    for failure in failures:
        print("FAIL", failure)
    print(f"check_docs: {len(pages)} pages, {sum(len(p.links) for p in rendered.values())} links, "
          f"{sum(len(p.images) for p in rendered.values())} images, {len(failures)} failures")  # fmt: skip
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
