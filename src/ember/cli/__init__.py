"""The ``ember`` command (also ``python -m ember``): :mod:`.main` parses the command line
and runs ``train``, ``eval``, ``plot`` and ``models``; :mod:`.manifold` runs ``manifold``.

Nothing at module level here imports NumPy, so that :func:`main` can call
:func:`ember.runtime.configure_threads` before NumPy loads its BLAS.
"""

from .main import build_parser, main, parse_config

__all__ = ["main", "build_parser", "parse_config"]
