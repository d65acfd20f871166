"""The training loop behind ``ember train`` and :func:`fit`, as the lecture recommends:
minibatches driven by a ``feval`` closure over the flat parameter vector, the training
set shuffled at every epoch, inputs normalized with statistics of the training set
only, evaluation mode for testing. On top: any optimizer of :mod:`ember.optim`, a
learning-rate schedule, L1/L2 decay switched on after a few epochs, max-norm and
gradient clipping, a validation split with early stopping, per-epoch metrics in a CSV
log, and checkpoints that resume bit-exactly. A non-finite loss stops the run with a
clear message, leaving the last good checkpoint and model file in place.

The explicit lecture-style loop (see examples/lecture_loop.py) is what :func:`fit`
runs at its core::

    params, grads = model.get_parameters()
    def feval(x):
        model.zero_grad_parameters()
        output = model.forward(inputs)
        loss = criterion.forward(output, targets)
        model.backward(inputs, criterion.backward(output, targets))
        return loss, grads
    optim.sgd(feval, params, config, state)
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from . import io, optim
from .checkpoint import generators
from .data import load_mnist
from .data.preprocess import make_preprocessor, to_file
from .errors import ShapeError, TrainingError
from .optim import Logger, MaxNorm, WeightDecay, clip_grad_norm, parameter_mask, parse_schedule
from .progress import Progress
from .run_state import RunState, fingerprint, load_run, save_run


@dataclass
class Dataset:
    """Arrays ready for a model: float32 inputs of shape (N, *input_shape), int64 labels,
    preprocessed with ``preprocessor`` fitted on ``x_train`` only."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    preprocessor: object = None
    x_valid: np.ndarray | None = None
    y_valid: np.ndarray | None = None
    preprocess_kind: str = "global"

    @property
    def standardizer(self):
        return self.preprocessor


def _shape_for(images, input_shape, what):
    n = images.shape[0]
    if int(np.prod(images.shape[1:])) != int(np.prod(input_shape)):
        raise ShapeError(
            f"{what}: samples of shape {tuple(images.shape[1:])} do not fit a model expecting {tuple(input_shape)}"
        )
    return images.reshape((n,) + tuple(input_shape))


def make_dataset(name, x_train, y_train, x_test, y_test, input_shape, valid=0, preprocess="global", seed=0):
    """Split off ``valid`` training samples (a count, or a fraction if < 1) at random
    (seeded), fit the preprocessing (see :mod:`ember.data.preprocess`) on the rest,
    and apply it to all three sets."""
    n = len(y_train)
    n_valid = int(round(valid * n)) if 0 < valid < 1 else int(valid)
    if not 0 <= n_valid < n:
        raise ValueError(f"valid must leave training samples: asked for {valid!r} of {n}")
    x_valid = y_valid = None
    if n_valid:
        order = np.random.default_rng([seed, 1]).permutation(n)
        held, kept = np.sort(order[:n_valid]), np.sort(order[n_valid:])
        x_valid, y_valid = x_train[held], y_train[held]
        x_train, y_train = x_train[kept], y_train[kept]
    pre = make_preprocessor(preprocess)
    x_train, x_test = _shape_for(x_train, input_shape, name), _shape_for(x_test, input_shape, name)
    x_valid = None if x_valid is None else _shape_for(x_valid, input_shape, name)
    x_train = pre.fit_transform(x_train) if pre else x_train.astype(np.float32)
    apply = pre.transform if pre else (lambda a: a.astype(np.float32))
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    return Dataset(
        name, x_train, y_train.astype(np.int64), apply(x_test), y_test.astype(np.int64), n_classes, pre,
        None if x_valid is None else apply(x_valid), None if y_valid is None else y_valid.astype(np.int64), preprocess,
    )  # fmt: skip


def load_dataset(input_shape, data_dir=None, data_file=None, limit=None, valid=0, preprocess="global", seed=0) -> Dataset:
    """MNIST (bundled, or from ``data_dir``), or an ``.npz`` file with ``x_train``,
    ``y_train``, ``x_test``, ``y_test``; see :func:`make_dataset` for ``valid`` and
    ``preprocess`` (default: one mean and std over the training images, the lecture's
    recipe)."""
    if data_file:
        with np.load(data_file, allow_pickle=False) as archive:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(archive.files)
            if missing:
                raise ValueError(f"{data_file}: missing arrays {sorted(missing)} (need x_train, y_train, x_test, y_test)")
            xtr, ytr, xte, yte = (archive[k] for k in ("x_train", "y_train", "x_test", "y_test"))
        name = str(data_file)
    else:
        splits = load_mnist(data_dir)
        (xtr, ytr), (xte, yte) = splits["train"], splits["test"]
        name = "mnist"
    if limit:
        xtr, ytr = xtr[:limit], ytr[:limit]
    return make_dataset(name, xtr, ytr, xte, yte, input_shape, valid, preprocess, seed)


#: the learning rate and momentum used when none is given (else the optimizer's default)
DEFAULT_LR = {"sgd": 0.05, "nag": 0.05}
_LR_KEY = {"asgd": "eta0", "rprop": "stepsize", "cg": None}
_HAS = {"learning_rate_decay": {"sgd", "nag", "adam", "adamw", "adagrad"}}


@dataclass
class TrainOptions:
    """Options of :func:`fit` (the flags of ``ember train``).

    optimizer: a name in ``optim.OPTIMIZERS``; lr, lr_decay, momentum, dampening,
    nesterov go to it where it has them (``lr`` None: 0.05 for sgd/nag, else the
    optimizer's default); optim_config: any other hyperparameters of it.
    schedule: e.g. ``"step:10:0.5"`` (:func:`ember.optim.parse_schedule`).
    weight_decay / l1: L2 / L1 penalties added to the gradient from epoch
    ``decay_from`` on (0-based: 2 = from the third), sparing biases if
    ``skip_biases``. max_norm: cap on each unit's incoming weight norm. clip_grad: cap
    on the gradient's norm. early_stop: stop after this many epochs without a better
    validation loss (needs a validation set) and keep the best parameters.
    log: CSV file, one row per epoch. checkpoint: file written every
    ``checkpoint_every`` steps and at each epoch's end; resume: continue from it.
    max_steps: stop (with a checkpoint) after this many steps in total.
    """

    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float | None = None
    lr_decay: float = 0.0
    momentum: float | None = None
    dampening: float = 0.0
    nesterov: bool = False
    optim_config: dict = field(default_factory=dict)
    schedule: str | None = None
    weight_decay: float = 0.0
    l1: float = 0.0
    decay_from: int = 0
    skip_biases: bool = False
    max_norm: float | None = None
    clip_grad: float | None = None
    early_stop: int = 0
    seed: int = 0
    save: str | None = None
    log: str | None = None
    checkpoint: str | None = None
    checkpoint_every: int = 0
    resume: bool = False
    max_steps: int | None = None
    progress: bool = True
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("checkpoint_every", "early_stop", "decay_from"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        if self.optimizer not in optim.OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; one of {', '.join(optim.OPTIMIZERS)}")
        if (self.checkpoint_every or self.resume) and not self.checkpoint:
            raise ValueError("checkpoint_every and resume need a checkpoint file (--checkpoint PATH)")
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or self.max_steps < 1):
            raise ValueError(f"max_steps must be a positive int, got {self.max_steps!r}")

    @property
    def lr_key(self):
        return _LR_KEY.get(self.optimizer, "learning_rate")

    def optimizer_config(self) -> dict:
        """The ``config`` dict for ``optim.<optimizer>`` (validated by the optimizer)."""
        name, config = self.optimizer, {}
        lr = self.lr if self.lr is not None else DEFAULT_LR.get(name)
        if lr is not None and self.lr_key:
            config[self.lr_key] = lr
        if name in _HAS["learning_rate_decay"] and self.lr_decay:
            config["learning_rate_decay"] = self.lr_decay
        if name in ("sgd", "nag"):
            config["momentum"] = 0.9 if self.momentum is None else self.momentum
        if name == "sgd":
            config["dampening"] = self.dampening
            if self.nesterov:
                config["nesterov"] = True
        config.update(self.optim_config)
        if config.get("line_search") == "wolfe":
            config["line_search"] = optim.lswolfe
        return config


def evaluate(model, criterion, x, y, batch_size=1000):
    """``(mean loss, accuracy, predictions)`` of ``model`` in evaluation mode."""
    was_training = model.train
    model.evaluate()
    total_loss, predictions = 0.0, np.empty(len(y), dtype=np.int64)
    backend = model.backend
    for start in range(0, len(y), batch_size):
        xb = backend.asarray(x[start : start + batch_size])
        yb = backend.asarray(y[start : start + batch_size], dtype="int64")
        out = model.forward(xb)
        total_loss += criterion.forward(out, yb) * len(yb)
        predictions[start : start + len(yb)] = backend.to_numpy(out.argmax(axis=1))
    if was_training:
        model.training()
    return total_loss / max(len(y), 1), float((predictions == y).mean()), predictions


def make_feval(model, criterion, inputs, targets, grads, regularize=None):
    """The lecture's closure: loss and flat gradient on the current minibatch buffers.
    ``regularize(x, grads)``, if given, adjusts the gradient (weight decay, clipping)."""

    def feval(x):
        model.zero_grad_parameters()
        output = model.forward(inputs)
        loss = criterion.forward(output, targets)
        model.backward(inputs, criterion.backward(output, targets))
        if regularize is not None:
            regularize(x, grads)
        return loss, grads

    return feval


def fit(model, criterion, data: Dataset, options: TrainOptions, out=None, save_metadata=None):
    """Train ``model`` on ``data``; print one summary line per epoch.

    Returns the history: one dict per completed epoch (train / valid / test loss and
    accuracy, learning rate, time). With ``options.checkpoint`` the run can be killed
    at any moment and resumed (``resume=True``) to the same parameters, bit for bit.
    Raises :class:`TrainingError` if the loss becomes NaN or infinite (the last
    checkpoint and model file are left untouched).
    """
    return _Run(model, criterion, data, options, out or sys.stdout, save_metadata or {}).train()


class _Run:
    """One training run: the state of :func:`fit` and its steps."""

    def __init__(self, model, criterion, data, options, out, save_metadata):
        self.model, self.criterion, self.data, self.options, self.out = model, criterion, data, options, out
        self.save_metadata = save_metadata
        model.training()
        model.compute_grad_input = False  # the input is data: skip its gradient
        self.params, self.grads = model.get_parameters()
        self.step_fn = optim.OPTIMIZERS[options.optimizer]
        self.config, self.state = options.optimizer_config(), {}
        n, bs = len(data.y_train), options.batch_size
        self.steps_per_epoch = -(-n // bs)
        self.schedule = None
        if options.schedule:
            if not options.lr_key:
                raise ValueError(f"optimizer {options.optimizer} has no learning rate to schedule")
            lr0 = self.config.get(options.lr_key, DEFAULT_LR.get(options.optimizer, 1e-3))
            self.schedule = parse_schedule(options.schedule, lr0, options.epochs, self.steps_per_epoch)
        if options.early_stop and data.y_valid is None:
            raise ValueError("early stopping needs a validation set (--valid N)")
        mask = parameter_mask(model) if options.skip_biases else None
        self.decay = WeightDecay(options.weight_decay, options.l1, options.decay_from, mask)
        self.max_norm = MaxNorm(model, options.max_norm) if options.max_norm else None
        self.data_rng = np.random.default_rng(options.seed)
        self.gens = generators(model, self.data_rng)
        self.best_params = self.params.copy() if options.early_stop else None
        self.fingerprint = fingerprint(options, data, self.config)
        backend = model.backend
        self.batch_x = backend.empty((bs,) + data.x_train.shape[1:])
        self.batch_y = np.empty(bs, dtype=np.int64)
        self.run = RunState()
        self.epoch = 0

    # ------------------------------------------------------------------ the loop
    def train(self):
        o, run = self.options, self.run
        if o.resume and o.checkpoint and os.path.exists(o.checkpoint):
            self.run = run = load_run(o.checkpoint, self.model, self.params, self.state, self.gens, self.schedule,
                                      self.fingerprint, len(self.data.y_train), self.best_params)  # fmt: skip
            print(f"resumed from {o.checkpoint}: epoch {run.epoch + 1}, step {run.step}", file=self.out, flush=True)
        elif o.resume:
            print(f"no checkpoint at {o.checkpoint}: starting from scratch", file=self.out, flush=True)
        self.logger = Logger(o.log, keep_rows=run.log_rows if run.step or run.epoch else None) if o.log else None
        while run.epoch < o.epochs and not run.finished:
            self.epoch = run.epoch
            if not self._train_epoch():
                return run.history  # stopped by max_steps
            self._end_epoch()
        return run.history

    def _train_epoch(self):
        o, run, data = self.options, self.run, self.data
        n, bs = len(data.y_train), o.batch_size
        if run.order is None:
            run.order, run.position, run.loss_sum, run.seen, run.correct = self.data_rng.permutation(n), 0, 0.0, 0, 0
        self.started = time.perf_counter()
        bar = Progress(n, f"epoch {self.epoch + 1}/{o.epochs}", stream=self.out, enabled=o.progress)
        bar.update(run.position)
        backend = self.model.backend
        while run.position < n:
            if o.max_steps is not None and run.step >= o.max_steps:
                bar.close()
                self._checkpoint()
                print(f"stopped after {run.step} steps (max_steps)" + (f"; resume with --resume from {o.checkpoint}"
                      if o.checkpoint else ""), file=self.out, flush=True)  # fmt: skip
                return False
            index = run.order[run.position : run.position + bs]
            xb, yb = self.batch_x[: len(index)], self.batch_y[: len(index)]
            if backend.xp is np:
                np.take(data.x_train, index, axis=0, out=xb)
            else:  # pragma: no cover - GPU only
                xb[...] = backend.asarray(data.x_train[index])
            np.take(data.y_train, index, out=yb)
            if self.schedule is not None:
                self.config[o.lr_key] = self.schedule(self.epoch, run.step)
            feval = make_feval(self.model, self.criterion, xb, yb, self.grads, self._regularize)
            loss = float(self.step_fn(feval, self.params, self.config, self.state)[1][0])
            if not math.isfinite(loss):
                bar.close()
                self._fail(loss, run.position // bs + 1)
            if self.max_norm is not None:
                self.max_norm.apply()
            run.step += 1
            run.position += len(index)
            run.loss_sum += loss * len(index)
            run.seen += len(index)
            run.correct += int((backend.to_numpy(self.model.output.argmax(axis=1)) == yb).sum())
            bar.update(len(index), loss=run.loss_sum / run.seen)
            if o.checkpoint_every and run.step % o.checkpoint_every == 0:
                self._checkpoint()
        bar.close()
        return True

    def _regularize(self, x, g):
        self.decay.apply(x, g, self.epoch)
        if self.options.clip_grad:
            clip_grad_norm(g, self.options.clip_grad)

    def _end_epoch(self):
        o, run, data = self.options, self.run, self.data
        train_time = time.perf_counter() - self.started
        row = {"epoch": self.epoch + 1, "step": run.step, "train_loss": run.loss_sum / max(run.seen, 1),
               "train_acc": run.correct / max(run.seen, 1)}  # fmt: skip
        if data.y_valid is not None:
            row["valid_loss"], row["valid_acc"], _ = evaluate(self.model, self.criterion, data.x_valid, data.y_valid)
        row["test_loss"], row["test_acc"], _ = evaluate(self.model, self.criterion, data.x_test, data.y_test)
        row["lr"] = self._current_lr()
        row["time"] = train_time
        run.history.append(row)
        valid = f"valid loss {row['valid_loss']:.4f} acc {row['valid_acc'] * 100:6.2f}%  " if "valid_loss" in row else ""
        print(f"epoch {row['epoch']:>3}  train loss {row['train_loss']:.4f} acc {row['train_acc'] * 100:6.2f}%  {valid}"
              f"test loss {row['test_loss']:.4f} acc {row['test_acc'] * 100:6.2f}%  time {train_time:5.1f}s  "
              f"lr {row['lr']:.4g}", file=self.out, flush=True)  # fmt: skip
        if self.logger is not None:
            self.logger.add(row)
            run.log_rows = self.logger.rows
        monitored = row.get("valid_loss", row["train_loss"])
        if self.schedule is not None:
            self.schedule.observe(monitored)
        improved = run.best is None or monitored < run.best
        if improved:
            run.best, run.best_epoch, run.bad_epochs = monitored, row["epoch"], 0
            if self.best_params is not None:
                self.best_params[...] = self.params
        else:
            run.bad_epochs += 1
        run.epoch, run.order, run.position = self.epoch + 1, None, 0
        if o.early_stop and run.bad_epochs >= o.early_stop:
            self.params[...] = self.best_params
            run.finished = True
            print(f"early stopping: no better validation loss for {o.early_stop} epochs; keeping epoch "
                  f"{run.best_epoch} (valid loss {run.best:.4f})", file=self.out, flush=True)  # fmt: skip
        if o.save and (not o.early_stop or improved or run.finished):
            self._save_model(row)
        self._checkpoint()

    # ------------------------------------------------------------------ files
    def _current_lr(self):
        key = self.options.lr_key
        lr = self.config.get(key) if key else None
        if lr is None:
            return math.nan
        if self.options.optimizer in _HAS["learning_rate_decay"]:
            count = self.state.get("eval_counter", self.state.get("t", 0))
            lr = lr / (1 + count * self.config.get("learning_rate_decay", 0.0))
        return lr

    def _save_model(self, row):
        arrays, meta = to_file(self.data.preprocessor)
        meta = {**self.save_metadata, **meta, "epoch": str(row["epoch"]), "test_accuracy": f"{row['test_acc']:.6f}"}
        io.save(self.model, self.options.save, meta, extra=arrays)

    def _checkpoint(self):
        if not self.options.checkpoint:
            return
        if not bool(np.isfinite(self.model.backend.to_numpy(self.params)).all()):
            self._fail(math.nan, None, "the parameters are not finite")
        save_run(self.options.checkpoint, self.run, self.model, self.params, self.state, self.gens, self.schedule,
                 self.fingerprint, self.best_params)  # fmt: skip

    def _fail(self, loss, batch, what=None):
        o, run = self.options, self.run
        kept = []
        if o.checkpoint and os.path.exists(o.checkpoint):
            kept.append(f"the last checkpoint ({o.checkpoint}) is intact: lower the learning rate and --resume")
        if o.save and os.path.exists(o.save):
            kept.append(f"the model saved at the end of epoch {run.epoch} ({o.save}) is intact")
        where = f"at epoch {self.epoch + 1}" + (f", step {batch}" if batch else "")
        what = what or f"the loss became {loss}"
        raise TrainingError(f"training stopped: {what} {where} (learning rate {self._current_lr():g}); "
                            f"try a smaller --lr." + (" " + "; ".join(kept) + "." if kept else ""))  # fmt: skip


def model_metadata(data: Dataset) -> dict:
    """What ``ember eval`` needs besides the arrays: the dataset's name."""
    return {"dataset": data.name}


__all__ = ["Dataset", "TrainOptions", "load_dataset", "make_dataset", "evaluate", "make_feval", "fit"]
