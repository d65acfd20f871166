"""Run fuzz cases, each in a child forked from this prepared process, with a memory cap
(``RLIMIT_AS``: the child's address space at fork plus :data:`CAP`) and a timeout;
collect and tabulate the outcomes. Peak memory is the child's ``VmHWM`` (reset through
``/proc/self/clear_refs`` after the fork) above its resident size at the start."""

from __future__ import annotations

import collections
import json
import os
import resource
import select
import signal
import time
import traceback

import numpy as np

from ember.errors import FormatError, ShapeError, TrainingError

from . import targets

CAP = 1 << 30  # address space a child may add (a safety net; the budget below is what counts)
BUDGET = 64 << 20  # peak resident memory a refused load may add
TIMEOUT = 5.0
EMBER_ERRORS = (FormatError, ShapeError, TrainingError)
OUTCOMES = ["loaded-exact", "refused", "raw-exception", "crash", "hang", "silent-wrong-load", "memory"]
BAD = {"raw-exception", "crash", "hang", "silent-wrong-load", "memory"}


def _status(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _child(write_fd, work):
    try:
        resource.setrlimit(resource.RLIMIT_AS, (_status("VmSize") + CAP, resource.RLIM_INFINITY))
        try:
            with open("/proc/self/clear_refs", "w") as refs:
                refs.write("5")  # reset VmHWM to the current resident size
        except OSError:
            pass
        base = _status("VmRSS")
        started = time.perf_counter()
        try:
            outcome, detail = work(), ""
        except EMBER_ERRORS as exc:
            outcome, detail = "refused", f"{type(exc).__name__}: {exc}"[:300]
        except MemoryError as exc:
            outcome, detail = "memory", f"MemoryError: {exc}"[:300]
        except BaseException as exc:  # noqa: BLE001 - classifying every escape is the point
            outcome, detail = "raw-exception", "".join(traceback.format_exception_only(type(exc), exc))[-300:]
        report = {"outcome": outcome, "detail": detail, "peak": max(_status("VmHWM") - base, 0),
                  "seconds": time.perf_counter() - started}  # fmt: skip
        if outcome == "refused" and report["peak"] > BUDGET:
            report["outcome"] = "memory"
        os.write(write_fd, json.dumps(report).encode())
    finally:
        os._exit(0)


def run_one(work, timeout=TIMEOUT):
    """Run ``work()`` in a forked child; returns its report dict."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(write_fd, work)
    os.close(write_fd)
    chunks, deadline, hung = [], time.monotonic() + timeout, False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            hung = True
            break
        ready, _, _ = select.select([read_fd], [], [], left)
        if ready:
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    os.close(read_fd)
    if hung:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if hung:
        return {"outcome": "hang", "detail": f"past {timeout}s", "peak": 0, "seconds": timeout}
    if not chunks:
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        return {"outcome": "crash", "detail": f"no report (signal {sig}, status {status})", "peak": 0, "seconds": 0}
    return json.loads(b"".join(chunks))


def _write(path, raw):
    with open(path, "wb") as handle:
        handle.write(raw)


def campaign(models=300, checkpoints=100, data=100, seed=0, log=None):
    """Run the cases; returns ``{family: Counter(outcome)}``, the list of bad cases and
    the largest peak (bytes above baseline) of any refused load."""
    table = collections.defaultdict(collections.Counter)
    bad, peak = [], {"refused": 0, "any": 0}
    model_bases = targets._model_bases()
    training = targets.Training() if checkpoints else None
    data_bases = targets.DataBases()
    path = os.path.join(targets.WORK, "case")
    plan = [("model files", models), ("checkpoints", checkpoints), ("IDX/npz", data)]
    for family, count in plan:
        for number in range(count):
            case_rng = np.random.default_rng([seed, len(family), number])
            if family == "model files":
                raw, kind, resigned, original = targets.make_model_case(model_bases, case_rng)
                _write(path, raw)
                report = run_one(lambda: targets.check_model(path, raw, original, resigned))
            elif family == "checkpoints":
                raw, kind, resigned, original, index = targets.make_checkpoint_case(training, case_rng)
                _write(path, raw)
                report = run_one(lambda: targets.check_checkpoint(path, training, index, raw, original, resigned),
                                 timeout=3 * TIMEOUT)  # fmt: skip
            else:
                raw, kind, mode = targets.make_data_case(data_bases, case_rng)
                _write(path, raw)
                report = run_one(lambda: targets.check_data(path, data_bases, mode))
            label = family + (" (re-signed)" if family != "IDX/npz" and resigned else "")
            table[label][report["outcome"]] += 1
            peak["any"] = max(peak["any"], report["peak"])
            if report["outcome"] == "refused":
                peak["refused"] = max(peak["refused"], report["peak"])
            if report["outcome"] in BAD:
                bad.append({"family": family, "number": number, "kind": kind, **report})
            if log is not None:
                log.write(json.dumps({"family": family, "kind": kind, **report}) + "\n")
    return table, bad, peak


def format_table(table) -> str:
    """The outcome table as Markdown."""
    lines = ["| files | " + " | ".join(OUTCOMES) + " | total |", "|---" * (len(OUTCOMES) + 2) + "|"]
    for family in sorted(table):
        counts = table[family]
        lines.append(f"| {family} | " + " | ".join(str(counts.get(o, 0)) for o in OUTCOMES) + f" | {sum(counts.values())} |")
    return "\n".join(lines)
