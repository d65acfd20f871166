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

from dataclasses import dataclass, field

import numpy as np

from .. import optim
from ..data.checks import check_dataset
from ..data.images import PreprocessedImages
from ..data.layout import to_model_layout
from ..data.named import load_named
from ..data.npz import read_npz
from ..data.preprocess import make_preprocessor
from ..errors import ShapeError
from ..nn._fresh_grads import zeroed_gradients
from .._typing import Array

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..nn.module import Criterion


@dataclass
class Dataset:
    """Inputs ready for a model, int64 labels. ``x_train``, ``x_valid``, ``x_test`` are
    :class:`~ember.data.images.PreprocessedImages` of shape (N, *input_shape): the raw
    (uint8) images, preprocessed with ``preprocessor`` (fitted on ``x_train`` only) one
    batch at a time, float32 when sliced or gathered."""

    name: str
    x_train: np.ndarray | PreprocessedImages
    y_train: np.ndarray
    x_test: np.ndarray | PreprocessedImages
    y_test: np.ndarray
    n_classes: int
    preprocessor: object = None
    x_valid: np.ndarray | PreprocessedImages | None = None
    y_valid: np.ndarray | None = None
    preprocess_kind: str = "global"
    layout: str | None = None

    @property
    def standardizer(self) -> Any:
        return self.preprocessor


def _models_that_fit(sample: tuple) -> str:
    """A hint naming the built-in models whose input has as many values as ``sample``."""
    from ..models import MODELS

    size = int(np.prod(sample))
    fits = sorted(name for name, spec in MODELS.items() if int(np.prod(spec.input_shape)) == size)
    if not fits or int(np.prod(sample)) == 0:
        return ""
    return f" (models that take {'x'.join(map(str, sample))} samples: --model {', --model '.join(fits)})"


def make_dataset(name: str, x_train: Any, y_train: Any, x_test: Any, y_test: Any, input_shape: tuple, valid: float = 0,
                 preprocess: str = "global", seed: int = 0, layout: str | None = None) -> Dataset:
    """Check the arrays (:func:`ember.data.checks.check_dataset`: numeric images, one
    whole-number label in 0 .. K-1 per image, 1-based labels refused with a message),
    put the images in the model's layout (:func:`ember.data.layout.to_model_layout`: NHWC
    detected from the shape where only one reading fits, else ``layout`` must say
    ``"nchw"`` or ``"nhwc"``), split off ``valid`` training samples (a count, or a fraction
    if < 1) at random (seeded), and fit the preprocessing (see :mod:`ember.data.preprocess`)
    on the rest; images stay in their dtype and each batch is preprocessed when gathered."""
    y_train, y_test, n_classes = check_dataset(name, x_train, y_train, x_test, y_test)
    try:
        x_train, layout = to_model_layout(x_train, input_shape, layout, name)
    except ShapeError as error:
        raise ShapeError(f"{error}{_models_that_fit(np.shape(x_train)[1:])}") from None
    x_test, _ = to_model_layout(x_test, input_shape, layout, name)
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
    if pre is not None:
        pre.fit(x_train)
    # the images stay uint8 (or whatever they are); each batch is preprocessed when gathered
    x_train = PreprocessedImages(x_train, pre)
    return Dataset(
        name, x_train, y_train, PreprocessedImages(x_test, pre), y_test, n_classes, pre,
        None if x_valid is None else PreprocessedImages(x_valid, pre), y_valid, preprocess, layout,
    )  # fmt: skip


def load_dataset(input_shape: tuple, data_dir: str | None = None, data_file: str | None = None, limit: int | None = None,
                 valid: float = 0, preprocess: str = "global", seed: int = 0, dataset: str | None = None,
                 layout: str | None = None, download: bool = False) -> Dataset:
    """A named dataset (``dataset``: mnist, svhn, cifar10 or idx, see
    :mod:`ember.data.named`; default mnist, bundled or from ``data_dir``), or an ``.npz``
    file with ``x_train``, ``y_train``, ``x_test``, ``y_test``; see :func:`make_dataset`
    for ``valid``, ``preprocess`` (default: one mean and std over the training images,
    the lecture's recipe) and ``layout``."""
    if data_file:
        arrays = read_npz(data_file, ("x_train", "y_train", "x_test", "y_test"))
        xtr, ytr, xte, yte = (arrays[k] for k in ("x_train", "y_train", "x_test", "y_test"))
        name = str(data_file)
    else:
        name = dataset or "mnist"
        splits = load_named(name, data_dir, download)
        (xtr, ytr), (xte, yte) = splits["train"], splits["test"]
    if limit:
        xtr, ytr = xtr[:limit], ytr[:limit]
    return make_dataset(name, xtr, ytr, xte, yte, input_shape, valid, preprocess, seed, layout)


#: the learning rate used when none is given (else the optimizer's default, TORCH_LR)
DEFAULT_LR = {"sgd": 0.05, "nag": 0.05}
#: each optimizer's own default learning rate (Torch7's; ``asgd``: eta0, ``rprop``: stepsize)
TORCH_LR = {"sgd": 1e-3, "nag": 1e-3, "adam": 1e-3, "adamw": 1e-3, "adagrad": 1e-3, "adadelta": 1.0,
            "rmsprop": 1e-2, "adamax": 2e-3, "asgd": 1e-4, "rprop": 0.1, "lbfgs": 1.0}  # fmt: skip
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
    grad_shards: 0 (off) or a power of two S: the reproducible batch gradient, a fixed
    tree sum of S chunk gradients on one BLAS thread, bit for bit the same on 1 process
    and on N MPI ranks (N a power of two dividing S; :mod:`ember.distributed.reproducible`).
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
    grad_shards: int = 0

    def __post_init__(self) -> None:
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
        if self.grad_shards:
            from ..distributed.reproducible import check_shards

            check_shards(self.grad_shards)

    @property
    def lr_key(self) -> Any:
        return _LR_KEY.get(self.optimizer, "learning_rate")

    def optimizer_config(self) -> dict:
        """The ``config`` dict for ``optim.<optimizer>`` (validated by the optimizer)."""
        name, config = self.optimizer, dict[str, object]()
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


def on_model_backend(criterion: Criterion, model: Any) -> Any:
    """``criterion``, moved to ``model``'s backend where they differ (a float64 or GPU
    model with a criterion made with the default backend)."""
    if criterion.backend != model.backend:
        criterion.to(model.backend)
    return criterion


def evaluate(model: Any, criterion: Criterion, x: Array, y: Array,
             batch_size: int = 1000) -> tuple[float, float, np.ndarray]:
    """``(mean loss, accuracy, predictions)`` of ``model`` in evaluation mode."""
    criterion = on_model_backend(criterion, model)
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


def make_feval(model: Any, criterion: Criterion, inputs: Any, targets: Any, grads: Array,
               regularize: Any = None) -> Any:
    """The lecture's closure: loss and flat gradient on the current minibatch buffers.
    ``regularize(x, grads)``, if given, adjusts the gradient (weight decay, clipping)."""

    def feval(x: Array):
        with zeroed_gradients(model):  # = model.zero_grad_parameters(), minus a pass over the gradients
            output = model.forward(inputs)
            loss = criterion.forward(output, targets)
            model.backward(inputs, criterion.backward(output, targets))
        if regularize is not None:
            regularize(x, grads)
        return loss, grads

    return feval


def model_metadata(data: Dataset) -> dict:
    """What ``ember eval`` needs besides the arrays: the dataset's name."""
    meta = {"dataset": data.name}
    if data.layout:
        meta["layout"] = data.layout
    return meta


__all__ = ["Dataset", "TrainOptions", "load_dataset", "make_dataset", "evaluate", "make_feval", "model_metadata"]
