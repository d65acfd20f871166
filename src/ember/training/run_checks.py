"""The checks :func:`ember.training.run_state.load_run` makes before it changes anything.

Each takes the checkpoint's ``path`` (for the message) and raises :class:`FormatError`
naming the file, the entry and what is wrong. Values a checkpoint re-signed after
editing could carry -- a float epoch, ``finished=inf``, an int32 view of the
parameters, momentum of another shape, a generator state of the wrong kind -- are
all refused here, before anything is assigned.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import numpy as np

from . import checkpoint
from .._typing import Array
from ..errors import FormatError
from ..io import check_fits

Path = str | os.PathLike
_COUNTERS = ("epoch", "step", "position", "seen", "correct", "best_epoch", "bad_epochs", "log_rows")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def decode_run(path: Path, state: Any, n_train: int, batch_size: int | None, RunState: type) -> Any:  # noqa: N803
    """A ``RunState`` (:class:`~ember.training.run_state.RunState`, passed in: run_state
    imports this module) from the checkpoint's ``run`` object, with every field's type
    checked and the counters checked against each other."""
    names = {f.name for f in fields(RunState)} - {"order"}
    if not isinstance(state, dict) or set(state) != names:
        got = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise FormatError(f"{path}: run must have exactly the fields {sorted(names)}, got {str(got)[:200]}")
    for name in _COUNTERS:
        if not _is_int(state[name]) or state[name] < 0:
            raise FormatError(f"{path}: run.{name} must be an int >= 0, got {str(state[name])[:40]}")
    if not isinstance(state["finished"], bool):
        raise FormatError(f"{path}: run.finished must be true or false, got {str(state['finished'])[:40]}")
    if not _is_number(state["loss_sum"]) or not math.isfinite(state["loss_sum"]):
        raise FormatError(f"{path}: run.loss_sum must be a finite number, got {str(state['loss_sum'])[:40]}")
    if state["best"] is not None and not (_is_number(state["best"]) and math.isfinite(state["best"])):
        raise FormatError(f"{path}: run.best must be null or a finite number, got {str(state['best'])[:40]}")
    history = state["history"]
    if not isinstance(history, list) or not all(
        isinstance(row, dict) and all(_is_number(v) for v in row.values()) for row in history
    ):
        raise FormatError(f"{path}: run.history must be a list of rows of numbers")
    run = RunState(**state)
    problems = []
    if run.position > n_train:
        problems.append(f"position {run.position} outside the {n_train} training samples")
    if len(history) != run.epoch:
        problems.append(f"{len(history)} history rows for {run.epoch} completed epochs")
    # (between epochs position is 0 while seen still counts the finished epoch's samples)
    if (run.position and run.seen != run.position) or run.correct > run.seen or run.seen > n_train:
        problems.append(f"seen {run.seen} / correct {run.correct} do not fit position {run.position}")
    if max(run.best_epoch, run.bad_epochs, run.log_rows) > run.epoch:
        problems.append(f"best_epoch / bad_epochs / log_rows beyond the {run.epoch} completed epochs")
    if run.finished and run.epoch == 0:
        problems.append("finished before the first epoch")
    if batch_size:
        per_epoch = -(-n_train // batch_size)
        steps = run.epoch * per_epoch + -(-run.position // batch_size)
        if run.step != steps:
            problems.append(f"step {run.step} is not what epoch {run.epoch} and position {run.position} imply ({steps})")
    if problems:
        raise FormatError(f"{path}: inconsistent run counters: " + "; ".join(problems))
    return run


def check_array(path: Path, name: str, array: np.ndarray | None, like: Array) -> None:
    """``array`` exists with the shape and dtype of ``like`` (the live array it restores)."""
    if array is None:
        raise FormatError(f"{path}: the checkpoint has no {name!r}")
    check_fits(path, name, array, like, needs="the model", exact=True)


def decode_order(path: Path, order: np.ndarray | None, run: Any, n_train: int) -> np.ndarray | None:
    """The stored epoch order: a permutation of the training samples (needed mid-epoch)."""
    if order is None:
        if run.position:
            raise FormatError(f"{path}: position {run.position} inside an epoch but no stored data order")
        return None
    if order.shape != (n_train,) or order.dtype.kind not in "iu":
        raise FormatError(f"{path}: order must be {n_train} integers, got {order.shape} {order.dtype}")
    if not np.array_equal(np.sort(order), np.arange(n_train)):
        raise FormatError(f"{path}: the stored data order is not a permutation of the {n_train} training samples")
    return order.astype(np.int64)


def check_rng_states(path: Path, gens: list[np.random.Generator], states: Any) -> None:
    """One state per generator, each of its generator's kind and accepted by a throw-away
    generator of that kind (so setting the real ones afterwards cannot fail)."""
    if not isinstance(states, list) or len(states) != len(gens):
        raise FormatError(f"{path}: {len(states) if isinstance(states, list) else '?'} RNG states for {len(gens)} generators")
    for gen, state in zip(gens, states):
        if not isinstance(state, dict) or state.get("bit_generator") != gen.bit_generator.state["bit_generator"]:
            raise FormatError(f"{path}: RNG state {str(state)[:60]!r} does not fit a {type(gen.bit_generator).__name__}")
    for index, (gen, state) in enumerate(zip(gens, states)):
        trial = type(gen.bit_generator)()
        try:
            trial.state = state
        except (TypeError, ValueError, KeyError, OverflowError) as exc:
            raise FormatError(f"{path}: rng[{index}]: not a valid {type(trial).__name__} state ({exc})") from None
        if trial.state != state:  # accepted but converted (a float truncated): not what was saved
            raise FormatError(f"{path}: rng[{index}]: not a valid {type(trial).__name__} state (values of the wrong kind)")


def check_schedule(path: Path, schedule: Any, state: Any) -> None:
    """The schedule state has the live schedule's keys and value kinds, and loads into a copy."""
    reference = {} if schedule is None else schedule.state_dict()
    if not isinstance(state, dict) or set(state) != set(reference):
        raise FormatError(f"{path}: schedule state {str(state)[:80]} does not fit the schedule {schedule!r}")
    for key, value in state.items():
        if not _same_kind(reference[key], value) or (_is_int(reference[key]) and not _is_int(value)):
            raise FormatError(f"{path}: schedule.{key} = {str(value)[:40]} does not fit {reference[key]!r}")
    if schedule is not None:
        trial = copy.deepcopy(schedule)
        try:
            trial.load_state_dict(state)
        except (TypeError, ValueError, KeyError, OverflowError) as exc:
            raise FormatError(f"{path}: schedule state does not load ({exc})") from None
        if trial.state_dict() != state:
            raise FormatError(f"{path}: schedule state {str(state)[:80]} does not load as saved")


def _same_kind(reference: Any, value: Any) -> bool:
    """JSON value ``value`` can stand where ``reference`` stood (None and numbers mix:
    e.g. a plateau schedule's best value starts as None)."""
    if isinstance(reference, bool) or isinstance(value, bool):
        return isinstance(reference, bool) and isinstance(value, bool)
    if reference is None or _is_number(reference):
        return value is None or (_is_number(value) and math.isfinite(value))
    return type(value) is type(reference)


def check_optimizer_state(path: Path, optimizer: tuple[Callable, dict], params: Any, arrays: dict[str, np.ndarray],
                          scalars: Any, step: int) -> None:  # fmt: skip
    """The optimizer state against what ``optimizer = (step_fn, config)`` itself keeps:
    a dry run on a copy of the parameters (a quadratic bowl) gives the keys it needs
    after one step and may have after three, each array's shape and dtype and each
    scalar's kind."""
    if not isinstance(scalars, dict):
        raise FormatError(f"{path}: optim_scalars must be an object")
    required, allowed = _reference_state(optimizer, params)
    ref_arrays, ref_scalars = allowed
    for name, array in arrays.items():
        like = ref_arrays.get(name)
        if like is None:
            raise FormatError(f"{path}: {name}: the optimizer keeps no such array")
        check_array(path, name, array, like)
    for key, value in scalars.items():
        if key not in ref_scalars:
            raise FormatError(f"{path}: optim_scalars.{key}: the optimizer keeps no such value")
        reference = ref_scalars[key]
        if not _same_kind(reference, value) or (value is None) != (reference is None) or (_is_int(reference) and not _is_int(value)):
            raise FormatError(f"{path}: optim_scalars.{key} = {str(value)[:40]} does not fit {reference!r}")
    if step:
        missing = sorted(set(required[0]) - set(arrays)) + sorted(set(required[1]) - set(scalars))
        if missing:
            raise FormatError(f"{path}: the optimizer state lacks {missing[:5]} after {step} steps")


def _reference_state(optimizer: tuple[Callable, dict], params: Any) -> tuple[tuple[dict, dict], tuple[dict, dict]]:
    """``(after one step, union over three steps)``, each ``(arrays, scalars)`` as
    :func:`ember.training.checkpoint.pack_state` gives them."""
    step_fn, config = optimizer
    x = params.copy()
    x += 1  # away from the bowl's minimum at 0, so every optimizer moves
    grad = x.copy()

    def feval(point):
        grad[...] = point
        return float((point * point).sum()) / 2, grad

    state: dict = {}
    snapshots = []
    for _ in range(3):
        step_fn(feval, x, dict(config), state)
        snapshots.append(checkpoint.pack_state(state))
    arrays, scalars = {}, {}
    for a, s in snapshots:
        arrays.update(a)
        scalars.update(s)
    return snapshots[0], (arrays, scalars)


__all__ = ["decode_run", "check_array", "decode_order", "check_rng_states", "check_schedule", "check_optimizer_state"]
