"""File fuzzing for ember's readers (issue 13): model files, checkpoints, IDX and npz data.

Each case mutates a good file (byte flips, truncation, extension, header length,
structured edits of the JSON header, the architecture, the sharing table, the
checkpoint's run state / RNG / schedule / optimizer state, IDX dimensions, npz members
and label/image arrays), optionally *re-signed* (digests recomputed, as an attacker or
a careless tool would), and loads it in a forked child with a memory cap
(``RLIMIT_AS``) and a timeout. Outcomes:

- ``loaded-exact``: loaded, and what was loaded is exactly what the file says (and, for
  a file that was not re-signed, exactly the original);
- ``refused``: an ember error (``FormatError``, ``ShapeError``, ``TrainingError``);
- ``raw-exception``: any other exception escaped;
- ``crash``: the child died (signal, or no report);
- ``hang``: past the timeout;
- ``silent-wrong-load``: loaded something other than the file's content;
- ``memory``: ``MemoryError``, or a refused load that peaked above the memory budget.

Run: ``python -m tests.fuzz`` (the full campaign; ``--help`` for the sizes), or
:func:`campaign` from a test (``tests/test_fuzz.py`` runs a few hundred cases).
"""

from .runner import BAD, campaign, format_table

__all__ = ["campaign", "format_table", "BAD"]
