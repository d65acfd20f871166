"""The package layout keeps its promises (docs/index.md, "Package map"): every module imports
on its own, importing ember changes nothing outside ember, and the import graph goes one way.

The graph is read from the source (every ``import``, also those inside functions, which run
later but are dependencies all the same), so a forbidden edge fails here even when no test
happens to run the function that has it.
"""

import ast
import json
import os
import subprocess
import sys

import pytest

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
ROOT = os.path.join(SRC, "ember")

# The part of ember a module belongs to: its subpackage, or its own name for a top-level module.
SUBPACKAGES = {"nn", "optim", "data", "datasets", "models", "training", "drlim", "cli", "unsup"}
# What nn (the modules) must never import: it sits under everything but the array layer.
NN_MAY_NOT_IMPORT = {"data", "datasets", "optim", "models", "training", "drlim", "cli", "runtime", "ember"}


def _module_files():
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, SRC)[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                yield ".".join(parts), path


MODULES = dict(_module_files())


def _imports(module, path):
    """The ember modules that ``module`` imports (absolute names), from its source."""
    is_package = path.endswith("__init__.py")
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "ember")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "ember":
                continue
            for alias in node.names:  # `from ember import nn` names a module; `from ember import save` the root
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
    return found


def _part(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "ember"


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def test_the_graph_is_read_from_real_imports():
    # a sanity check of the reader itself: known edges are found
    assert "ember.backend" in GRAPH["ember.nn.module"]
    assert "ember.training.train" in GRAPH["ember.training.loop"]
    assert "ember.runtime" in GRAPH["ember.cli.main"]


def test_nn_imports_nothing_from_data_optim_training_cli_or_the_package_root():
    bad = sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if _part(module) == "nn"
        for target in targets
        if _part(target) in NN_MAY_NOT_IMPORT
    )
    assert not bad, "nn must sit below data, optim, training, the CLI and the package root:\n" + "\n".join(bad)


def _cycle(edges):
    """One cycle of the directed graph ``edges`` (node -> set of nodes), or None."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, path + [nxt])
                if found:
                    return found
        state[node] = "done"
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node, [node])
            if found:
                return found
    return None


def test_no_import_cycle_between_subpackages():
    edges = {}
    for module, targets in GRAPH.items():
        for target in targets:
            a, b = _part(module), _part(target)
            if a != b and a in SUBPACKAGES and b in SUBPACKAGES:
                edges.setdefault(a, set()).add(b)
    assert _cycle(edges) is None, f"import cycle between subpackages: {' -> '.join(_cycle(edges))}"


def test_no_import_cycle_between_any_parts():
    edges = {}
    for module, targets in GRAPH.items():
        for target in targets:
            a, b = _part(module), _part(target)
            if a != b:
                edges.setdefault(a, set()).add(b)
    assert _cycle(edges) is None, f"import cycle: {' -> '.join(_cycle(edges))}"


def test_no_import_cycle_between_the_training_modules():
    edges = {m: {t for t in ts if _part(t) == "training"} for m, ts in GRAPH.items() if _part(m) == "training"}
    assert _cycle(edges) is None, f"import cycle in ember.training: {' -> '.join(_cycle(edges))}"


def test_a_cycle_is_found_when_there_is_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


_PROBE = """
import json, os, sys, threading
environ, threads = dict(os.environ), threading.active_count()
import ember
root = {"numpy": "numpy" in sys.modules, "environ": dict(os.environ) == environ,
        "threads": threading.active_count() - threads}
import importlib
failed = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception as error:
        failed[name] = repr(error)
print(json.dumps({"root": root, "failed": failed, "environ": dict(os.environ) == environ,
                  "threads": threading.active_count() - threads}))
"""


@pytest.fixture(scope="module")
def fresh_import():
    """Import ember, then every module of it, in a fresh interpreter (clean environment)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENBLAS", "OMP_", "MKL_"))}
    env["PYTHONPATH"] = SRC
    modules = sorted(m for m in MODULES if m != "ember.__main__")  # __main__ runs the command
    out = subprocess.run([sys.executable, "-c", _PROBE, *modules], capture_output=True, text=True, env=env,
                         timeout=300, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_module_imports_in_a_fresh_interpreter(fresh_import):
    assert fresh_import["failed"] == {}


def test_importing_ember_changes_nothing_outside_ember(fresh_import):
    assert fresh_import["root"] == {"numpy": False, "environ": True, "threads": 0}
    # nor does importing all of it: no environment variable set, no thread started
    assert fresh_import["environ"] and fresh_import["threads"] == 0


def test_the_command_shortens_the_blas_idle_spin_before_numpy_loads():
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENBLAS")}
    env["PYTHONPATH"] = SRC
    probe = ("import sys; import ember.cli; assert 'numpy' not in sys.modules, 'ember.cli imported NumPy';"
             "import ember.runtime as r; seen = []; real = r.configure_threads;"
             "r.configure_threads = lambda *a, **k: seen.append(('numpy' in sys.modules, real(*a, **k))) or seen[-1][1];"
             "ember.cli.main(['models']); print(seen[0][0], seen[0][1].blas_idle_short)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300, check=True)
    assert out.stdout.split()[-2:] == ["False", "True"]  # called before NumPy was loaded, and it took effect
