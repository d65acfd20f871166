"""A Griffe extension for the documentation site: Sphinx roles in docstrings become links.

ember's docstrings cross-reference with Sphinx roles (``:class:`Module```,
``:func:`~ember.optim.adam```, ``:meth:`forward```, ``:mod:`ember.nn```, ``:data:``,
``:attr:``, ``:exc:``, ``:obj:``). mkdocstrings renders docstrings as Markdown, where such a
role would show raw. Once the package is loaded, this extension rewrites each role in every
docstring into an *optional* mkdocs-autorefs reference: a link when the target is on the
site, else the name in code font (never a broken link, so ``mkdocs build --strict`` holds).

The name is resolved like Sphinx does: a dotted path as written (a leading ``~`` shows only
its last part; a leading ``.`` is relative to the current package), else within the scope
of the documented object (its class, its module, the module's imports).
Loaded by mkdocs.yml (``plugins: mkdocstrings: handlers: python: options: extensions``).
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(class|func|meth|mod|data|attr|exc|obj|const):`(?P<target>[^`]+)`")


def _resolve(obj: Any, name: str) -> str:
    """The full dotted path that ``name`` means in the scope of ``obj`` (best effort)."""
    if name.startswith("."):  # relative to the package of the module that holds obj
        module = obj if obj.is_module else obj.module
        package = module.path if module.is_init_module else module.path.rpartition(".")[0]
        return f"{package}.{name.lstrip('.')}"
    head, _, rest = name.partition(".")
    if head == obj.package.name:
        return name
    try:
        base = obj.resolve(head)
    except Exception:  # noqa: BLE001 - unknown to Griffe (a builtin, NumPy ...): keep the name
        return name
    return f"{base}.{rest}" if rest else base


def _rewrite(obj: Any, text: str) -> str:
    def link(match: re.Match[str]) -> str:
        target, explicit = match["target"].strip(), False
        if "<" in target and target.endswith(">"):  # :func:`title <target>`
            title, _, target = target[:-1].partition("<")
            title, target, explicit = title.strip(), target.strip(), True
        else:
            short = target.startswith("~")
            target = target.lstrip("~")
            title = target.rsplit(".", 1)[-1] if short else target.lstrip(".")
        if match.group(1) in ("func", "meth") and not explicit and not title.endswith(")"):
            title += "()"
        identifier = _resolve(obj, target)
        return (f'<autoref identifier="{html.escape(identifier)}" optional>'
                f"<code>{html.escape(title)}</code></autoref>")

    return ROLE.sub(link, text)


def _objects(obj: Any) -> Any:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _objects(member)


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx cross-reference roles into optional autorefs once a package is loaded."""

    def on_package(self, *, pkg: Any, **kwargs: Any) -> None:
        for obj in _objects(pkg):
            if obj.docstring is not None and ":`" in obj.docstring.value:
                obj.docstring.value = _rewrite(obj, obj.docstring.value)
