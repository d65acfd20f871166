"""The training loop behind ``ember train`` and :func:`fit`, as the lecture recommends:
minibatch SGD driven by a ``feval`` closure over the flat parameter vector, the
training set shuffled at every epoch, inputs normalized with statistics of the
training set only, evaluation mode for testing, and a non-finite loss stopping the run
with the last saved model left intact.

The explicit lecture-style loop is what :func:`fit` runs::

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

import json
import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from . import io, optim
from .data import Standardizer, load_mnist
from .errors import ShapeError, TrainingError
from .progress import Progress


@dataclass
class Dataset:
    """Arrays ready for a model: float32 inputs of shape (N, *input_shape), int64 labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    standardizer: Standardizer | None = None


def _shape_for(images, input_shape, what):
    n = images.shape[0]
    if int(np.prod(images.shape[1:])) != int(np.prod(input_shape)):
        raise ShapeError(
            f"{what}: samples of shape {tuple(images.shape[1:])} do not fit a model expecting {tuple(input_shape)}"
        )
    return images.reshape((n,) + tuple(input_shape))


def load_dataset(input_shape, data_dir=None, data_file=None, limit=None) -> Dataset:
    """MNIST (bundled, or from ``data_dir``), or an ``.npz`` file with ``x_train``,
    ``y_train``, ``x_test``, ``y_test``. Inputs are standardized (zero mean, unit
    variance) with one mean and std fitted on the training images only."""
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
    scaler = Standardizer("global").fit(xtr)
    n_classes = int(max(ytr.max(), yte.max())) + 1
    return Dataset(
        name,
        _shape_for(scaler.transform(xtr), input_shape, name),
        ytr.astype(np.int64),
        _shape_for(scaler.transform(xte), input_shape, name),
        yte.astype(np.int64),
        n_classes,
        scaler,
    )


@dataclass
class TrainOptions:
    """Hyperparameters of :func:`fit` (the CLI flags of ``ember train``)."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.05
    lr_decay: float = 0.0
    momentum: float = 0.9
    dampening: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    l1: float = 0.0
    seed: int = 0
    save: str | None = None
    progress: bool = True
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be a positive int, got {self.epochs!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {self.batch_size!r}")

    def sgd_config(self):
        return {
            "learning_rate": self.lr, "learning_rate_decay": self.lr_decay, "momentum": self.momentum,
            "dampening": self.dampening, "nesterov": self.nesterov, "weight_decay": self.weight_decay,
            "l1_weight_decay": self.l1,
        }  # fmt: skip


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


def make_feval(model, criterion, inputs, targets, grads):
    """The lecture's closure: loss and flat gradient on the current minibatch buffers."""

    def feval(_params):
        model.zero_grad_parameters()
        output = model.forward(inputs)
        loss = criterion.forward(output, targets)
        model.backward(inputs, criterion.backward(output, targets))
        return loss, grads

    return feval


def fit(model, criterion, data: Dataset, options: TrainOptions, out=None, save_metadata=None):
    """Train ``model`` with minibatch SGD; print one summary line per epoch.

    Returns the history: one dict per epoch (train/test loss and accuracy, time, lr).
    Raises :class:`TrainingError` if the loss becomes NaN or infinite (the model file
    saved at the end of the last good epoch is left untouched).
    """
    out = out or sys.stdout
    rng = np.random.default_rng(options.seed)
    model.training()
    model.compute_grad_input = False  # the input is data: skip its gradient
    params, grads = model.get_parameters()
    config, state = options.sgd_config(), {}
    n, bs = len(data.y_train), options.batch_size
    backend = model.backend
    batch_x = backend.empty((bs,) + data.x_train.shape[1:])
    batch_y = np.empty(bs, dtype=np.int64)
    history = []
    for epoch in range(1, options.epochs + 1):
        start = time.perf_counter()
        order = rng.permutation(n)
        bar = Progress(n, f"epoch {epoch}/{options.epochs}", stream=out, enabled=options.progress)
        seen = correct = 0
        loss_sum = 0.0
        for first in range(0, n, bs):
            index = order[first : first + bs]
            xb, yb = batch_x[: len(index)], batch_y[: len(index)]
            np.take(data.x_train, index, axis=0, out=xb) if backend.xp is np else xb.__setitem__(Ellipsis, backend.asarray(data.x_train[index]))
            np.take(data.y_train, index, out=yb)
            _, (loss,) = optim.sgd(make_feval(model, criterion, xb, yb, grads), params, config, state)
            if not math.isfinite(loss):
                bar.close()
                kept = f" The model saved at the end of epoch {epoch - 1} ({options.save}) is intact." if options.save and epoch > 1 else ""
                raise TrainingError(
                    f"training stopped: the loss became {loss} at epoch {epoch}, step {first // bs + 1} "
                    f"(learning rate {options.lr}); try a smaller --lr.{kept}"
                )
            loss_sum += loss * len(index)
            seen += len(index)
            correct += int((backend.to_numpy(model.output.argmax(axis=1)) == yb).sum())
            bar.update(len(index), loss=loss_sum / seen)
        bar.close()
        train_time = time.perf_counter() - start
        test_loss, test_acc, _ = evaluate(model, criterion, data.x_test, data.y_test)
        lr_now = options.lr / (1 + state.get("eval_counter", 0) * options.lr_decay)
        row = {"epoch": epoch, "train_loss": loss_sum / seen, "train_acc": correct / seen, "test_loss": test_loss,
               "test_acc": test_acc, "time": train_time, "lr": lr_now}  # fmt: skip
        history.append(row)
        print(f"epoch {epoch:>3}  train loss {row['train_loss']:.4f} acc {row['train_acc'] * 100:6.2f}%  "
              f"test loss {test_loss:.4f} acc {test_acc * 100:6.2f}%  time {train_time:5.1f}s  lr {lr_now:.4g}",
              file=out, flush=True)  # fmt: skip
        if options.save:
            meta = dict(save_metadata or {})
            meta.update({"epoch": str(epoch), "test_accuracy": f"{test_acc:.6f}"})
            io.save(model, options.save, meta)
    return history


def normalization_metadata(data: Dataset) -> dict:
    """What ``ember eval`` needs to preprocess inputs like training did."""
    s = data.standardizer
    return {"dataset": data.name, "normalization": json.dumps({"per": s.per, "mean": float(s.mean), "std": float(s.std)})}
