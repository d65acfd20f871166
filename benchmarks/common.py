"""Shared timing helpers for the benchmarks: interleaved windows, medians, ratios.

The host is shared and its speed drifts, so ember and PyTorch are timed in alternating
short windows within one process and compared by the median of per-window throughputs.
"""

from __future__ import annotations

import os
import statistics
import time


def set_threads(n):
    """Limit BLAS (NumPy) and PyTorch to ``n`` threads."""
    from ember.threads import set_num_threads

    set_num_threads(n)
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:  # pragma: no cover
        pass


def window(step, seconds):
    """Run ``step()`` repeatedly for about ``seconds``; return calls per second."""
    count, start = 0, time.perf_counter()
    while True:
        step()
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return count / elapsed


def compare(steps: dict, windows=7, seconds=0.5, warmup=3):
    """Interleave timing windows of each named step; return {name: median steps/s}."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    rates = {name: [] for name in steps}
    for _ in range(windows):
        for name, step in steps.items():
            rates[name].append(window(step, seconds))
    return {name: statistics.median(r) for name, r in rates.items()}


def machine_line():
    import numpy

    try:
        import torch

        tv = torch.__version__
    except ImportError:  # pragma: no cover
        tv = "absent"
    return f"numpy {numpy.__version__}, torch {tv}, {os.cpu_count()} cpus"
