"""ember's version, in a module of its own so that io can stamp model files without importing the package root."""

__version__ = "0.1.0"
