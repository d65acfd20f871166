"""The fuzzing suite of issue 13, small: a few hundred mutated model files, checkpoints
(including re-signed ones) and IDX/npz files, each loaded in a forked child with a
memory cap and a timeout, plus a few kill -9 / resume runs. Any crash, hang, escaped
exception, silent wrong load or memory overrun fails. The full campaign:
``python -m tests.fuzz`` (see tests/fuzz/__init__.py)."""

import os
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork, RLIMIT_AS and /proc are Linux's")


def test_mutated_files_load_exactly_or_are_refused():
    from fuzz import BAD, campaign, format_table

    table, bad, peak = campaign(models=160, checkpoints=60, data=100, seed=13)
    outcomes = {o for counts in table.values() for o in counts}
    assert not outcomes & BAD, format_table(table) + "\n" + "\n".join(map(str, bad[:10]))
    assert {"loaded-exact", "refused"} <= outcomes  # both sides of the oracle were exercised
    assert peak["refused"] < 64 << 20


def test_kill_9_at_random_moments_then_resume_is_bit_identical():
    from fuzz.resume import kill_and_resume

    seed = int(os.environ.get("EMBER_FUZZ_SEED", int.from_bytes(os.urandom(2), "little")))  # new moments each run
    results = kill_and_resume(2, seed=seed)
    assert all(r["exact"] for r in results), (f"rerun with EMBER_FUZZ_SEED={seed}", [r["stderr"] for r in results])
    assert not any(r["leftovers"] for r in results), f"rerun with EMBER_FUZZ_SEED={seed}"
