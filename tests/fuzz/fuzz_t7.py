"""Fuzz ember's Torch7 reader and mapping: bit flips, truncations, huge sizes, deep
nesting and reference cycles. Every file must load or raise ember's FormatError; none may
crash, run past the time limit or grow the process past 1 GB (its peak resident memory,
which bounds every single file's use).

    python tests/fuzz/fuzz_t7.py [N_FILES] [SEED]     (default 2000 files; CI runs a few hundred)
"""

from __future__ import annotations

import os
import signal
import struct
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), os.path.join(os.path.dirname(os.path.dirname(HERE)), "src")]

from t7_writer import Function, Obj, Tensor, dumps  # noqa: E402

from ember.errors import FormatError  # noqa: E402
from ember.t7 import load_t7  # noqa: E402

MEMORY_LIMIT = 2**30


def seeds():
    """Valid files to mutate: the committed real ones and a few written here."""
    data = os.path.join(os.path.dirname(HERE), "data", "t7")
    files = [open(os.path.join(data, f), "rb").read() for f in sorted(os.listdir(data)) if f.endswith(".t7")]
    conv = Obj("nn.SpatialConvolution", {"nInputPlane": 2, "nOutputPlane": 3, "kW": 3, "kH": 3, "dW": 1, "dH": 1,
                                         "weight": Tensor("Float", np.ones((3, 2, 3, 3))), "bias": Tensor("Float", np.zeros(3))})  # fmt: skip
    cyclic = {"name": "loop"}
    cyclic["self"] = cyclic
    net = Obj("nn.Sequential", {"modules": {1: conv, 2: Obj("nn.ReLU", {}), 3: Obj("nn.View", {"size": Tensor("Long", np.array([27]))}),
                                            4: Obj("nn.Linear", {"weight": Tensor("Cuda", np.ones((2, 27))), "bias": Tensor("Cuda", np.zeros(2))})},
                                "extra": cyclic, "fn": Function()})  # fmt: skip
    files += [dumps(net), dumps(net, ascii=True), dumps(net, long_size=4)]
    real = os.environ.get("EMBER_T7_REAL")  # the larger real models too, when at hand
    if real and os.path.isdir(real):
        files += [open(os.path.join(real, f), "rb").read() for f in sorted(os.listdir(real)) if f.endswith(".t7")]
    return files


def mutate(blob: bytes, rng) -> bytes:
    """One hostile variant of ``blob``."""
    data = bytearray(blob)
    kind = rng.integers(6)
    if kind == 0:  # bit flips
        for _ in range(rng.integers(1, 8)):
            pos = rng.integers(len(data))
            data[pos] ^= 1 << int(rng.integers(8))
    elif kind == 1:  # truncation
        data = data[: rng.integers(len(data))]
    elif kind == 2:  # a huge or negative count / size
        pos = int(rng.integers(max(1, len(data) - 8)))
        value = int(rng.choice([2**31 - 1, -1, 2**30, 10**9, -(2**31)]))
        data[pos : pos + 4] = struct.pack("<i", value)
    elif kind == 3:  # a huge long (sizes, strides, offsets, storage lengths)
        pos = int(rng.integers(max(1, len(data) - 8)))
        data[pos : pos + 8] = struct.pack("<q", int(rng.choice([2**62, 2**40, -(2**40), 2**33])))
    elif kind == 4:  # deep nesting of tables (possibly never closed)
        depth = int(rng.integers(500, 5000))
        data = bytearray(b"".join(struct.pack("<iii", 3, i + 1, 1) + struct.pack("<id", 1, 1.0) for i in range(depth)))
        if rng.integers(2):
            data += struct.pack("<i", 0)
    else:  # a reference back to an enclosing object in a random place (a cycle), or random bytes
        if rng.integers(2):
            pos = int(rng.integers(max(1, len(data) - 8)))
            data[pos : pos + 8] = struct.pack("<ii", 3, 1)
        else:
            data = bytearray(rng.integers(0, 256, int(rng.integers(1, 200)), dtype=np.uint8).tobytes())
    return bytes(data)


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


def _peak_rss():
    """This process's peak resident memory in bytes: Linux's ``VmHWM``, the high-water mark
    of this program's own memory. (``ru_maxrss`` is no use here: Linux carries it across
    ``exec``, so a fuzzer started from a pytest process that once held 1 GB reports 1 GB.)"""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:  # not Linux
        pass
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def run(n_files=2000, seed=0, time_limit=5.0):
    """Fuzz ``n_files`` files; returns counts and the lists of failures."""
    rng = np.random.default_rng(seed)
    bases = seeds()
    report = {"files": 0, "loaded": 0, "refused": 0, "crashes": [], "slow": [], "big": []}
    handler = signal.signal(signal.SIGALRM, _alarm) if hasattr(signal, "SIGALRM") else None
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "fuzz.t7")
        for index in range(n_files):
            blob = mutate(bases[index % len(bases)], rng)
            with open(path, "wb") as handle:
                handle.write(blob)
            start = time.perf_counter()
            if handler is not None:
                signal.setitimer(signal.ITIMER_REAL, time_limit)
            try:
                load_t7(path, partial=True)
                report["loaded"] += 1
            except FormatError:
                report["refused"] += 1
            except _Timeout:
                report["slow"].append(index)
            except Exception as exc:  # noqa: BLE001 - anything else is a finding
                report["crashes"].append((index, f"{type(exc).__name__}: {exc}"[:200]))
            finally:
                if handler is not None:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            if time.perf_counter() - start > time_limit and index not in report["slow"]:
                report["slow"].append(index)
            report["files"] += 1
    if _peak_rss() > MEMORY_LIMIT:
        report["big"].append("peak resident memory over 1 GB")
    if handler is not None:
        signal.signal(signal.SIGALRM, handler)
    return report


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    start = time.perf_counter()
    result = run(n, int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    print({k: v if isinstance(v, int) else v[:10] for k, v in result.items()}, f"{time.perf_counter() - start:.1f}s")
    sys.exit(1 if result["crashes"] or result["slow"] or result["big"] else 0)
