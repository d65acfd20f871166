"""Every public name has documentation: classes, functions and their public methods
(a method may inherit its docstring from the base class that defines the contract)."""

import inspect

import ember
import ember.cli
import ember.data
import ember.drlim
import ember.drlim.manifold
import ember.image
import ember.io
import ember.models
import ember.nn
import ember.optim
import ember.runtime
import ember.testing
import ember.training
import ember.unsup
import ember.viz

PACKAGES = [ember, ember.nn, ember.optim, ember.data, ember.io, ember.testing, ember.training, ember.models,
            ember.drlim, ember.drlim.manifold, ember.cli, ember.runtime, ember.viz, ember.image,
            ember.unsup]  # fmt: skip


def _public(module):
    names = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
    for name in names:
        obj = getattr(module, name, None)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            yield f"{module.__name__}.{name}", obj


def test_every_public_name_and_method_has_a_docstring():
    missing = []
    for package in PACKAGES:
        for path, obj in _public(package):
            if not (obj.__doc__ or "").strip():  # a class's own docstring, not its base's
                missing.append(path)
            if inspect.isclass(obj):
                for name in dir(obj):
                    member = getattr(obj, name)
                    if not name.startswith("_") and (inspect.isfunction(member) or inspect.ismethod(member)):
                        if not (inspect.getdoc(member) or "").strip():
                            missing.append(f"{path}.{name}")
    assert not missing, f"{len(missing)} public names without a docstring: {sorted(set(missing))}"
