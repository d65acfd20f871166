"""argparse ``type`` functions for the command lines: a bad number is a usage error.

argparse turns the ``ArgumentTypeError`` into ``ember CMD: error: argument --X: ...`` and
exit status 2 before any work starts; a value is never silently replaced by a default
(``--epochs 0`` is refused, not read as "unset").
"""

from __future__ import annotations

import argparse

from typing import Any


def _number(kind, low, inclusive: bool=True):
    """An argparse ``type`` for numbers >= low (or > low): a bad value is a usage error
    (exit status 2) before anything runs, never a silent default."""

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        if value != value or value in (float("inf"), float("-inf")) or (value < low if inclusive else value <= low):
            raise argparse.ArgumentTypeError(f"must be {'>=' if inclusive else '>'} {low}, got {text}")
        return value

    return parse


#: integers >= 1, integers >= 0, finite numbers > 0, finite numbers >= 0
POSITIVE_INT, COUNT, POSITIVE, NON_NEGATIVE = _number(int, 1), _number(int, 0), _number(float, 0, False), _number(float, 0)


def probability(text: Any) -> Any:
    """An argparse ``type`` for a probability in [0, 1) (dropout)."""
    value = NON_NEGATIVE(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value
