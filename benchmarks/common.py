"""Shared timing helpers for the benchmarks: interleaved windows, medians, ratios.

The host is shared and its speed drifts, so ember and PyTorch are timed in alternating
short windows within one process and compared by the median of per-window throughputs.
"""

from __future__ import annotations

import os
import statistics
import time


def benchmark_args(doc, batches, windows, seconds, add=None):
    """Parse a benchmark's command line: --threads, --batches (unless None), --windows, --seconds,
    --profile, --max-foreign (and what ``add(parser)`` adds), give BLAS the thread count
    in the environment, which it reads when NumPy is first imported, and make the same
    :func:`ember.configure_threads` call as the ``ember`` command (short BLAS idle spin,
    ember's helper thread): call this before importing NumPy. Returns the parsed arguments."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    if batches is not None:
        parser.add_argument("--batches", type=int, nargs="+", default=batches)
    parser.add_argument("--windows", type=int, default=windows)
    parser.add_argument("--seconds", type=float, default=seconds)
    parser.add_argument("--profile", action="store_true", help="also print ember's time per module")
    parser.add_argument("--numpy-too", action="store_true",
                        help="also time ember with its compiled kernels (ember[fast]) switched off")
    parser.add_argument("--max-foreign", type=float, default=0.1,
                        help="drop windows in which other processes used more than this share of the CPUs "
                             "(the host is shared; 1 keeps every window)")  # fmt: skip
    if add is not None:
        add(parser)
    args = parser.parse_args()
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(args.threads)
    from ember.runtime import configure_threads

    configure_threads()
    return args


def numpy_path(step):
    """``step`` run with ember's compiled kernels switched off (the NumPy reference path),
    for same-run comparisons of ``ember[fast]`` against plain NumPy (``--numpy-too``)."""
    from ember import _fast

    def run():
        previous = _fast.set_enabled(False)
        try:
            return step()
        finally:
            _fast.set_enabled(previous)

    return run


def set_threads(n):
    """Limit BLAS (NumPy) and PyTorch to ``n`` threads (ember's part: :func:`ember.configure_threads`,
    as the ``ember`` command does; the benchmark called it once before importing NumPy already)."""
    from ember.runtime import configure_threads

    configure_threads(n)
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


def cpu_ticks():
    """(busy ticks of the whole machine, all ticks, ticks used by this process), or None
    where /proc/stat does not exist (not Linux)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:9]]
    except OSError:  # pragma: no cover
        return None
    mine = os.times()
    total = sum(fields)
    return total - fields[3] - fields[4], total, (mine.user + mine.system) * os.sysconf("SC_CLK_TCK")


def foreign_load(before, after):
    """Share of the machine's CPU time that other processes used between two samples."""
    if before is None or after is None or after[1] == before[1]:
        return 0.0
    return max(0.0, ((after[0] - before[0]) - (after[2] - before[2])) / (after[1] - before[1]))


def compare(steps: dict, windows=7, seconds=0.5, warmup=3, raw=False, max_foreign=None):
    """Interleave timing windows of each named step (in turn forward and reverse order);
    return {name: median steps/s}
    (``raw=True``: {name: [steps/s of each window]}, for per-window ratios).

    ``max_foreign`` (e.g. 0.1): a window during which other processes used more than
    that share of the machine's CPU time is recorded as None (the host is shared).
    """
    for step in steps.values():
        for _ in range(warmup):
            step()
    rates = {name: [] for name in steps}
    order = list(steps.items())
    for index in range(windows):
        # every other window in reverse order: no contestant always runs right after the
        # same other one (whose threads may still spin, whose data fills the caches)
        for name, step in order if index % 2 == 0 else order[::-1]:
            before = cpu_ticks()
            rate = window(step, seconds)
            busy = foreign_load(before, cpu_ticks())
            rates[name].append(None if max_foreign is not None and busy > max_foreign else rate)
    if raw:
        return rates
    return {name: statistics.median([v for v in r if v is not None] or [float("nan")]) for name, r in rates.items()}


def ember_sgd_step(net, x, y):
    """One training step of an ember classifier (ClassNLL, SGD lr 0.01, momentum 0.9):
    returns a function running it. The input gradient is skipped (the input is data)."""
    from ember import nn, optim
    from ember.training import make_feval

    crit = nn.ClassNLLCriterion().to(net.backend)
    x = net.backend.asarray(x)  # labels stay NumPy, as in ember's training loop (checked without a GPU sync)
    net.compute_grad_input = False  # PyTorch skips that gradient too
    params, grads = net.get_parameters()
    config = {"learning_rate": 0.01, "momentum": 0.9, "dampening": 0.0}
    feval = make_feval(net, crit, x, y, grads)  # the closure `ember train` uses
    return lambda: optim.sgd(feval, params, config)


def torch_sgd_step(model, x, y, device="cpu"):
    """The same step in PyTorch: ``model(x)`` gives log-probabilities; x, y are NumPy arrays.
    ``loss.item()`` waits for the GPU, so a step's time is complete on ``device="cuda"`` too."""
    import torch

    model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    tx, ty = torch.tensor(x, device=device), torch.tensor(y, device=device)

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.nll_loss(model(tx), ty)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def profile(net, step, repeats=20):
    """Print the wall time of each of ``net``'s children's three methods inside real
    training steps (``step()``), and the rest (criterion, optimizer, containers)."""
    totals, wrapped = {}, []
    for index, module in enumerate(net.children()):
        for method in ("update_output", "update_grad_input", "acc_grad_parameters"):
            original = getattr(module, method)

            def timed(*args, _original=original, _key=(index, repr(module)[:38], method)):
                start = time.perf_counter()
                result = _original(*args)
                totals[_key] = totals.get(_key, 0.0) + time.perf_counter() - start
                return result

            setattr(module, method, timed)
            wrapped.append((module, method))
    for _ in range(3):
        step()
    totals.clear()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    total = (time.perf_counter() - start) / repeats
    print(f"  ember step {total * 1e3:.2f} ms, of which (ms):")
    for key in sorted(totals):
        if totals[key] / repeats > 2e-5:
            print(f"    {key[0]:2d} {key[1]:38s} {key[2]:20s} {totals[key] / repeats * 1e3:7.3f}")
    other = total - sum(totals.values()) / repeats
    print(f"       {'criterion, optimizer, containers':38s} {'':20s} {other * 1e3:7.3f}")
    for module, method in wrapped:
        del module.__dict__[method]


def print_ratios(label, batch, ember_rates, torch_rates, windows):
    """One result line: samples/s of each (median over kept windows) and the median of
    the per-window ratios ember / PyTorch, then each window's ratio."""
    pairs = [(a, b) for a, b in zip(ember_rates, torch_rates) if a and b]
    if not pairs:
        print(f"{label}  no window pair without other load; try again or --max-foreign 1")
        return
    e, t = statistics.median(a for a, _ in pairs), statistics.median(b for _, b in pairs)
    ratios = [a / b for a, b in pairs]
    print(f"{label} {e * batch:16.0f} {t * batch:16.0f} {statistics.median(ratios):6.2f}   "
          + " ".join(f"{r:.2f}" for r in ratios) + f"   ({len(pairs)}/{windows} window pairs kept)", flush=True)


def cpu_model():
    """The CPU's model name (/proc/cpuinfo, else platform.processor()) and its widest SIMD."""
    import platform

    name, flags = platform.processor() or "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and name in ("unknown CPU", platform.processor()):
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:  # pragma: no cover - not Linux
        pass
    simd = [f for f in ("avx512f", "amx_tile") if f in flags] or [f for f in ("avx2",) if f in flags]
    return name + (f" ({', '.join(simd)})" if simd else "")


def machine_line():
    """numpy/torch versions, CPU count; then, on a second line, the CPU model and the BLAS
    library with the kernel it picked (figures from different CPUs are not comparable)."""
    import numpy

    from ember import _blas

    try:
        import torch

        tv = torch.__version__
    except ImportError:  # pragma: no cover
        tv = "absent"
    fast = "ember[fast] on" if _fast_enabled() else "ember[fast] off"
    return (f"numpy {numpy.__version__}, torch {tv}, {os.cpu_count()} cpus, {fast}\n"
            f"  CPU: {cpu_model()}\n  BLAS: {_blas.describe()}")


def _fast_enabled():
    from ember import _fast

    return _fast.enabled()
