"""An untested module cannot land: every public module and criterion has a case."""

from cases import CASES

from ember import nn, unsup

ABSTRACT = {"Module", "Criterion", "Container"}


def public_module_classes():
    return {
        name
        for name in nn.__all__
        if isinstance(getattr(nn, name), type) and issubclass(getattr(nn, name), nn.Module) and name not in ABSTRACT
    }


def test_every_public_module_has_a_case():
    covered = set()
    for case in CASES:
        covered.add(type(case.build()).__name__)
        covered.update(case.covers)
    missing = sorted(public_module_classes() - covered)
    assert not missing, f"public modules without a case in tests/cases_*.py: {missing}"


def test_every_public_name_is_documented():
    undocumented = [n for n in nn.__all__ if not (getattr(nn, n).__doc__ or "").strip()]
    assert not undocumented, f"public names without a docstring: {undocumented}"


def public_unsup_module_classes():
    """The modules and criteria of ember.unsup (energy terms, sparse coding, PSD, LISTA, ...)."""
    return {
        name
        for name in unsup.__all__
        if isinstance(getattr(unsup, name), type) and issubclass(getattr(unsup, name), nn.Module)
    }


def test_every_public_unsup_module_has_a_case():
    covered = set()
    for case in CASES:
        covered.add(type(case.build()).__name__)
        covered.update(case.covers)
    found = public_unsup_module_classes()
    assert {"FistaL1", "PSD", "LISTA", "AutoEncoder"} <= found  # the walk sees them
    missing = sorted(found - covered)
    assert not missing, f"public ember.unsup modules without a case in tests/cases_*.py: {missing}"


def test_every_public_unsup_name_is_documented():
    undocumented = [n for n in unsup.__all__ if not (getattr(unsup, n).__doc__ or "").strip()]
    assert not undocumented, f"public ember.unsup names without a docstring: {undocumented}"
