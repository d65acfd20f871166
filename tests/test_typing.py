"""Type hints on the public API (a ratchet).

Every public function and method (a name without a leading underscore, ``__init__``
included, in a public class) of a module in ``FULLY_ANNOTATED`` must annotate each
parameter (``self``/``cls`` aside) and its return (``__init__`` aside). mypy checks the
bodies of annotated functions (``python -m mypy``, CI), so the hints are checked, not just
present. The list only grows: a module that becomes fully annotated must join it.

``python tests/test_typing.py`` prints the count per module.
"""

from __future__ import annotations

import ast
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")

FULLY_ANNOTATED = [
    "ember.architecture",
    "ember.cli.argtypes",
    "ember.cli.manifold",
    "ember.data.batches",
    "ember.data.checks",
    "ember.data.cifar",
    "ember.data.download",
    "ember.data.idx",
    "ember.data.images",
    "ember.data.layout",
    "ember.data.mnist",
    "ember.data.named",
    "ember.distributed.reproducible",
    "ember.data.npz",
    "ember.data.pose",
    "ember.data.pose_render",
    "ember.data.preprocess",
    "ember.data.svhn",
    "ember.drlim.manifold",
    "ember.drlim.plot",
    "ember.drlim.siamese",
    "ember.errors",
    "ember.image",
    "ember.interop",
    "ember.io",
    "ember.models",
    "ember.models.convnets",
    "ember.models.mlp",
    "ember.models.recurrent",
    "ember.nn._arrays",
    "ember.nn._layout",
    "ember.nn._rnn_fast",
    "ember.nn._fresh_grads",
    "ember.nn._spec",
    "ember.nn._state",
    "ember.nn._tables",
    "ember.nn._tree",
    "ember.nn.batchnorm",
    "ember.nn.cell_steps",
    "ember.nn.composite",
    "ember.nn.conn_tables",
    "ember.nn.containers",
    "ember.nn.criterion",
    "ember.nn.criterion_pairs",
    "ember.nn.criterion_tables",
    "ember.nn.distance",
    "ember.nn.dropout",
    "ember.nn.elementwise",
    "ember.nn.graph",
    "ember.nn.init",
    "ember.nn.lookup",
    "ember.nn.module",
    "ember.nn.normalization",
    "ember.nn.padding",
    "ember.nn.reduction",
    "ember.nn.rnn",
    "ember.nn.shape",
    "ember.nn.spatial_activation",
    "ember.nn.table_containers",
    "ember.nn.table_layout",
    "ember.nn.table_ops",
    "ember.nn.temporal",
    "ember.nn.torch_habits",
    "ember.optim._validate",
    "ember.optim.adadelta",
    "ember.optim.adagrad",
    "ember.optim.adam",
    "ember.optim.adamax",
    "ember.optim.adamw",
    "ember.optim.asgd",
    "ember.optim.cg",
    "ember.optim.checkgrad",
    "ember.optim.confusion",
    "ember.optim.fista",
    "ember.optim.lbfgs",
    "ember.optim.logger",
    "ember.optim.lswolfe",
    "ember.optim.nag",
    "ember.optim.plot",
    "ember.optim.recipes",
    "ember.optim.regularization",
    "ember.optim.rmsprop",
    "ember.optim.rprop",
    "ember.optim.schedules",
    "ember.optim.sgd",
    "ember.runtime",
    "ember.t7",
    "ember.t7.mapping",
    "ember.t7.reader",
    "ember.tensor_file",
    "ember.testing",
    "ember.training.checkpoint",
    "ember.training.progress",
    "ember.training.run_checks",
    "ember.training.run_state",
    "ember.training.train",
    "ember.viz",
]


def module_path(name: str) -> str:
    base = os.path.join(ROOT, *name.split("."))
    return os.path.join(base, "__init__.py") if os.path.isdir(base) else base + ".py"


def all_modules() -> list[str]:
    names = []
    for folder, _, files in os.walk(os.path.join(ROOT, "ember")):
        for file in sorted(files):
            if file.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, file), ROOT)[:-3].replace(os.sep, ".")
                names.append(rel.removesuffix(".__init__"))
    return sorted(names)


def public_functions(tree: ast.Module) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef, bool]]:
    """(qualified name, node, is_method) of every public function and method."""
    found = []

    def visit(body: list[ast.stmt], prefix: str, in_class: bool) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if not node.name.startswith("_") or (in_class and node.name == "__init__"):
                    found.append((prefix + node.name, node, in_class))
            elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                visit(node.body, f"{prefix}{node.name}.", True)

    visit(tree.body, "", False)
    return found


def missing_annotations(node: ast.FunctionDef | ast.AsyncFunctionDef, is_method: bool) -> list[str]:
    """The parameters (and ``return``) of ``node`` that have no annotation."""
    args = node.args
    params = args.posonlyargs + args.args + args.kwonlyargs
    static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in node.decorator_list)
    if is_method and params and not static:
        params = params[1:]  # self or cls
    missing = [p.arg for p in params if p.annotation is None]
    missing += [f"*{s.arg}" for s in (args.vararg,) if s is not None and s.annotation is None]
    missing += [f"**{s.arg}" for s in (args.kwarg,) if s is not None and s.annotation is None]
    if node.returns is None and node.name != "__init__":
        missing.append("return")
    return missing


def report(name: str) -> tuple[int, list[str]]:
    """(number of public functions, 'name: missing' for each incompletely annotated one)."""
    with open(module_path(name), encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    functions = public_functions(tree)
    problems = [f"{qualified}: {', '.join(m)}" for qualified, node, is_method in functions
                if (m := missing_annotations(node, is_method))]  # fmt: skip
    return len(functions), problems


def test_listed_modules_exist_once():
    assert len(FULLY_ANNOTATED) == len(set(FULLY_ANNOTATED))
    assert [m for m in FULLY_ANNOTATED if m not in all_modules()] == []


def test_listed_modules_annotate_every_public_function():
    problems = [f"{name}.{p}" for name in FULLY_ANNOTATED for p in report(name)[1]]
    assert problems == [], "public functions without type hints:\n" + "\n".join(problems)


def test_a_fully_annotated_module_joins_the_list():
    done = [name for name in all_modules() if name not in FULLY_ANNOTATED and report(name)[0] and not report(name)[1]]
    assert done == [], f"add to FULLY_ANNOTATED in tests/test_typing.py: {done}"


def test_the_checker_sees_what_is_missing():
    tree = ast.parse("def f(a, b: int = 1) -> int: ...\nclass C:\n    def m(self, x: int): ...\n"
                     "    def __init__(self, y): ...\n    def _hidden(self, z): ...\ndef _private(q): ...\n")
    found = {name: missing_annotations(node, method) for name, node, method in public_functions(tree)}
    assert found == {"f": ["a"], "C.m": ["return"], "C.__init__": ["y"]}


if __name__ == "__main__":
    total = annotated = 0
    for name in all_modules():
        n, problems = report(name)
        if n:
            total, annotated = total + n, annotated + n - len(problems)
            print(f"{n - len(problems):4d}/{n:4d}  {name}{'' if name in FULLY_ANNOTATED else '  (not in the ratchet)'}")
    print(f"{annotated}/{total} public functions and methods fully annotated")
    sys.exit(0)
