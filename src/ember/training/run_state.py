"""What a training checkpoint holds, and how the loop saves and restores it.

A :class:`RunState` is the loop's position: epoch, step, position inside the epoch
and its data order, the epoch's running sums, early-stopping bookkeeping, the history
of epoch rows and the number of CSV log rows written. :func:`save_run` adds the flat
parameters, module buffers, the optimizer state, every RNG state (the data-order
generator and each module's ``rng``, e.g. Dropout's) and the schedule state, and
writes them atomically with :func:`ember.training.checkpoint.write_checkpoint`.
:func:`load_run` validates the whole file against the model and the run's options
before changing anything, then restores it; resuming is bit-exact.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .. import io
from ..backend import to_numpy
from ..errors import FormatError
from ..optim._validate import namespace
from . import checkpoint, run_checks

if TYPE_CHECKING:
    from ..nn.module import Module
    from ..optim.schedules import Schedule

Path = str | os.PathLike


@dataclass
class RunState:
    epoch: int = 0  # completed epochs
    step: int = 0  # optimizer calls so far
    position: int = 0  # samples of the current epoch already used
    order: np.ndarray | None = None  # the current epoch's permutation (None between epochs)
    loss_sum: float = 0.0
    seen: int = 0
    correct: int = 0
    best: float | None = None  # early stopping: best monitored value, its epoch, epochs since
    best_epoch: int = 0
    bad_epochs: int = 0
    log_rows: int = 0
    finished: bool = False
    history: list = field(default_factory=list)

    def info(self) -> dict:
        """The JSON-able fields (all but ``order``, which is stored as an array)."""
        out = asdict(self)
        out.pop("order")
        return out


def buffers(model: Module) -> list[tuple[str, Any]]:
    """``[(path, array)]`` of the module buffers (persistent arrays that are not
    parameters, e.g. running statistics)."""
    param_ids = {id(p) for p in model.parameters()[0]}
    return [(name, a) for name, a in model.named_arrays() if id(a) not in param_ids]


def save_run(path: Path, run: RunState, model: Module, params: Any, opt_state: dict, gens: list[np.random.Generator],
             schedule: Schedule | None, fingerprint: dict, best_params: Any = None) -> None:  # fmt: skip
    """Write a checkpoint of the whole run (atomic; never with non-finite parameters)."""
    arrays = {"params": to_numpy(params)}
    for name, array in buffers(model):
        arrays["buffer/" + name] = to_numpy(array)
    optim_arrays, optim_scalars = checkpoint.pack_state(opt_state)
    arrays.update(optim_arrays)
    if run.order is not None:
        arrays["order"] = run.order
    if best_params is not None:
        arrays["best_params"] = to_numpy(best_params)
    info = {
        "run": run.info(),
        "optim_scalars": optim_scalars,
        "rng": checkpoint.rng_states(gens),
        "schedule": schedule.state_dict() if schedule is not None else {},
        "options": fingerprint,
        "architecture": io.describe_architecture(model),
    }
    checkpoint.write_checkpoint(path, arrays, info)


def load_run(path: Path, model: Module, params: Any, opt_state: dict, gens: list[np.random.Generator],
             schedule: Schedule | None, fingerprint: dict, n_train: int, best_params: Any = None,
             optimizer: tuple[Callable, dict] | None = None, batch_size: int | None = None) -> RunState:  # fmt: skip
    """Restore a run from ``path``; returns its :class:`RunState`.

    All or nothing: the whole checkpoint is decoded and checked first -- format and
    checksum, architecture, options, every array's shape and dtype, the run counters
    against each other (``step`` = epochs x steps per epoch + batches into this one),
    the RNG states (tried on throw-away generators), the schedule state (tried on a
    copy), and the optimizer state against what ``optimizer = (step_fn, config)`` keeps
    for these parameters. A problem raises :class:`FormatError` naming the file and the
    entry, and leaves model, optimizer, generators and schedule untouched.
    """
    arrays, info = checkpoint.read_checkpoint(path)
    if not isinstance(info, dict) or not {"run", "options", "optim_scalars", "rng", "schedule", "architecture"} <= set(info):
        raise FormatError(f"{path}: incomplete checkpoint (info lacks some of run, options, optim_scalars, rng, "
                          f"schedule, architecture)")  # fmt: skip
    saved_options, scalars, rng, sched = info["options"], info["optim_scalars"], info["rng"], info["schedule"]
    # 1. decode and validate everything
    if info["architecture"] != io.describe_architecture(model):
        raise FormatError(f"{path}: the checkpoint is of another network than the one being trained")
    if not isinstance(saved_options, dict):
        raise FormatError(f"{path}: options must be an object")
    changed = sorted(k for k in set(saved_options) | set(fingerprint) if saved_options.get(k) != fingerprint.get(k))
    if changed:
        diffs = ", ".join(f"{k}: {saved_options.get(k)!r} -> {fingerprint.get(k)!r}" for k in changed)
        raise FormatError(f"{path}: cannot resume with different training options ({diffs})")
    run = run_checks.decode_run(path, info["run"], n_train, batch_size, RunState)
    own = dict(buffers(model))
    expected = {"params": params, **{"buffer/" + k: v for k, v in own.items()}}
    if best_params is not None and "best_params" in arrays:
        expected["best_params"] = best_params
    for name, like in expected.items():
        run_checks.check_array(path, name, arrays.get(name), like)
    known = set(expected) | {"order", "best_params"}
    unknown = sorted(k for k in arrays if k not in known and not k.startswith("optim/"))
    if unknown:
        raise FormatError(f"{path}: unexpected arrays {unknown[:5]}")
    run.order = run_checks.decode_order(path, arrays.get("order"), run, n_train)
    run_checks.check_rng_states(path, gens, rng)
    run_checks.check_schedule(path, schedule, sched)
    optim_arrays = {k: v for k, v in arrays.items() if k.startswith("optim/")}
    if optimizer is not None:
        run_checks.check_optimizer_state(path, optimizer, params, optim_arrays, scalars, run.step)
    elif not isinstance(scalars, dict):
        raise FormatError(f"{path}: optim_scalars must be an object")
    # 2. restore (nothing below can fail on a validated checkpoint)
    xp = namespace(params)
    params[...] = xp.asarray(arrays["params"])
    for name, array in own.items():
        array[...] = xp.asarray(arrays["buffer/" + name])
    opt_state.clear()
    opt_state.update(checkpoint.unpack_state(optim_arrays, scalars, xp.asarray))
    if "best_params" in expected:
        best_params[...] = xp.asarray(arrays["best_params"])
    checkpoint.set_rng_states(gens, rng)
    if schedule is not None:
        schedule.load_state_dict(sched)
    return run


class LiveRun(Protocol):
    """What :func:`save_training` and :func:`load_training` read from a training run
    (a :class:`~ember.training.TrainingRun`): its state, model, flat parameters, optimizer
    state and config, generators, schedule, options and data."""

    run: RunState
    model: Module
    params: Any
    state: dict
    gens: list[np.random.Generator]
    schedule: Schedule | None
    fingerprint: dict
    best_params: Any
    step_fn: Callable
    config: dict
    options: Any
    data: Any


def save_training(path: Path, training: LiveRun) -> None:
    """:func:`save_run` of a whole training run (its ``run``, model, parameters, ...)."""
    t = training
    save_run(path, t.run, t.model, t.params, t.state, t.gens, t.schedule, t.fingerprint, t.best_params)


def load_training(path: Path, training: LiveRun) -> RunState:
    """:func:`load_run` into a whole training run, checked against its optimizer and batch
    size; returns the restored :class:`RunState` (the caller sets ``training.run``)."""
    t = training
    return load_run(path, t.model, t.params, t.state, t.gens, t.schedule, t.fingerprint, len(t.data.y_train),
                    t.best_params, optimizer=(t.step_fn, t.config), batch_size=t.options.batch_size)  # fmt: skip


def fingerprint(options: Any, data: Any, optimizer_config: dict) -> dict:
    """The options that determine a run's trajectory (they must match on resume)."""
    config = {k: v for k, v in optimizer_config.items() if k != "line_search"}
    return json.loads(json.dumps({
        "optimizer": options.optimizer, "optimizer_config": config, "batch_size": options.batch_size,
        "schedule": options.schedule, "weight_decay": options.weight_decay, "l1": options.l1,
        "decay_from": options.decay_from, "skip_biases": options.skip_biases, "max_norm": options.max_norm,
        "clip_grad": options.clip_grad, "seed": options.seed, "data": data.name, "n_train": len(data.y_train),
        "n_valid": 0 if data.y_valid is None else len(data.y_valid), "preprocess": data.preprocess_kind,
        "early_stop": options.early_stop,
    }, default=str))  # fmt: skip
