"""The docs site's Griffe extension turns Sphinx roles in docstrings into optional links."""

import importlib.util
import os
import re

import pytest

griffe = pytest.importorskip("griffe")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def extension():
    spec = importlib.util.spec_from_file_location("griffe_sphinx_roles", os.path.join(ROOT, "tools", "griffe_sphinx_roles.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def package():
    return griffe.load("ember", search_paths=[os.path.join(ROOT, "src")])


def test_no_sphinx_role_is_left_raw_in_any_docstring():
    roles = extension()
    package = griffe.load("ember", search_paths=[os.path.join(ROOT, "src")],
                          extensions=griffe.load_extensions(roles.SphinxRoles()))  # fmt: skip
    raw = [obj.path for obj in roles._objects(package)
           if obj.docstring is not None and roles.ROLE.search(obj.docstring.value)]  # fmt: skip
    assert raw == []
    docstring = package["nn.module.Module"].docstring.value
    assert '<autoref identifier="ember.nn.module.Module.training" optional><code>training()</code></autoref>' in docstring


@pytest.mark.parametrize("text, identifier, title", [
    (":func:`~ember.optim.adam`", "ember.optim.adam", "adam()"),
    (":mod:`ember.nn`", "ember.nn", "ember.nn"),
    (":class:`FormatError`", "ember.errors.FormatError", "FormatError"),
    (":meth:`the forward pass <forward>`", "ember.nn.module.Module.forward", "the forward pass"),
    (":data:`numpy.float32`", "numpy.float32", "numpy.float32"),
])  # fmt: skip
def test_role_forms(text, identifier, title, package):
    roles = extension()
    scope = package["nn.module.Module"] if "forward" in text else package["errors"]
    out = roles._rewrite(scope, f"see {text}.")
    assert re.fullmatch(r'see <autoref identifier="([^"]+)" optional><code>([^<]+)</code></autoref>\.', out).groups() == (identifier, title)
