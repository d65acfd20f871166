"""Helpers for the tests that compare ember's compiled kernels (ember[fast]) with the NumPy
reference: run a computation on both paths, and put the switch back afterwards."""

import pytest

from ember import _fast


@pytest.fixture
def restore_fast():
    """Turn the compiled path on for the test and restore the previous setting after it."""
    previous = _fast.set_enabled(True)
    yield
    _fast.set_enabled(previous)


def both(run):
    """``run()`` with the compiled path on, then off: (compiled result, NumPy result)."""
    _fast.set_enabled(True)
    fast = run()
    _fast.set_enabled(False)
    reference = run()
    _fast.set_enabled(True)
    return fast, reference
