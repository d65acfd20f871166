"""Measuring what a warm step allocates (tracemalloc), shared by the allocation tests."""

import gc
import tracemalloc

from ember import optim


def allocations(step, repeats=3):
    """(peak, retained) bytes traced over ``repeats`` calls of ``step()``. Garbage from
    before is collected first and the collector is off meanwhile, so the figures are the
    step's own."""
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(repeats):
            step()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        gc.enable()
    return peak - base, current - base


def warm_step_allocation(feval, params, config, state, warm=3, steps=5):
    """(peak, retained) bytes of ``steps`` SGD steps after ``warm`` warm-up steps."""
    for _ in range(warm):
        optim.sgd(feval, params, config, state)
    return allocations(lambda: optim.sgd(feval, params, config, state), steps)
