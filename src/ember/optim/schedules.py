"""Learning-rate schedules: the lecture's "schedule to decrease the learning rate".

A schedule is called as ``schedule(epoch, step)`` and returns the learning rate to use
for the next optimizer call; ``epoch`` counts the completed epochs (0 during the
first) and ``step`` the optimizer calls made so far. The training loop writes the value
into ``config["learning_rate"]`` before every call. :class:`ReduceOnPlateau` also needs
:meth:`Schedule.observe` with the validation metric at the end of each epoch.

Every schedule has ``state_dict()`` / ``load_state_dict()`` (plain JSON values) so a
checkpoint resumes it exactly, and :func:`parse_schedule` builds one from a short
string such as ``"step:10:0.5"`` (the ``ember train --schedule`` flag).
"""

from __future__ import annotations

import math

from typing import Any


class Schedule:
    """Base class: a constant learning rate ``lr``."""

    def __init__(self, lr: float) -> None:
        if not (isinstance(lr, int | float) and math.isfinite(lr) and lr >= 0):
            raise ValueError(f"{type(self).__name__}: lr must be a finite number >= 0, got {lr!r}")
        self.lr = float(lr)

    def __call__(self, epoch: int, step: int = 0) -> float:
        return self.lr

    def observe(self, metric: Any) -> None:
        """Told the epoch's validation metric (only :class:`ReduceOnPlateau` uses it)."""

    def state_dict(self) -> dict:
        """What a checkpoint must keep to resume the schedule (nothing for a pure function of time)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` gave."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


Constant = Schedule


def _positive(owner, name, value, low: float=0.0, low_open: bool=True, high=None):
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be a finite number, got {value!r}")
    if value < low or (low_open and value == low) or (high is not None and value > high):
        raise ValueError(f"{owner}: {name} must be {'>' if low_open else '>='} {low}"
                         + (f" and <= {high}" if high is not None else "") + f", got {value!r}")  # fmt: skip
    return value


class InverseTime(Schedule):
    """Torch7's annealing ``lr / (1 + t * decay)``, t = optimizer steps (``per="step"``,
    as ``learning_rate_decay`` in optim.sgd) or completed epochs (``per="epoch"``, as
    ``nn.StochasticGradient``)."""

    def __init__(self, lr: float, decay: Any, per: str = "step") -> None:
        super().__init__(lr)
        self.decay = float(_positive("InverseTime", "decay", decay, low_open=False))
        if per not in ("step", "epoch"):
            raise ValueError(f"InverseTime: per must be 'step' or 'epoch', got {per!r}")
        self.per = per

    def __call__(self, epoch: int, step: int = 0) -> Any:
        t = step if self.per == "step" else epoch
        return self.lr / (1 + t * self.decay)


class StepDecay(Schedule):
    """``lr * gamma ** floor(epoch / every)``: divide the rate every ``every`` epochs."""

    def __init__(self, lr: float, every: Any, gamma: float = 0.1) -> None:
        super().__init__(lr)
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"StepDecay: every must be a positive int (epochs), got {every!r}")
        self.every, self.gamma = every, float(_positive("StepDecay", "gamma", gamma, high=1))

    def __call__(self, epoch: int, step: int = 0) -> Any:
        return self.lr * self.gamma ** (int(epoch) // self.every)


class Exponential(Schedule):
    """``lr * gamma ** epoch``."""

    def __init__(self, lr: float, gamma: Any) -> None:
        super().__init__(lr)
        self.gamma = float(_positive("Exponential", "gamma", gamma, high=1))

    def __call__(self, epoch: int, step: int = 0) -> Any:
        return self.lr * self.gamma**epoch


class Cosine(Schedule):
    """Cosine annealing (Loshchilov & Hutter 2017) from ``lr`` to ``lr_min`` over
    ``epochs``: ``lr_min + (lr - lr_min) (1 + cos(pi e / epochs)) / 2``, with the
    fractional epoch ``e = epoch + (step - epoch start) / steps_per_epoch`` when
    ``steps_per_epoch`` is given (smooth within an epoch), else per epoch."""

    def __init__(self, lr: float, epochs: int, lr_min: float = 0.0, steps_per_epoch: Any = None) -> None:
        super().__init__(lr)
        if not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"Cosine: epochs must be a positive int, got {epochs!r}")
        self.epochs, self.lr_min = epochs, float(_positive("Cosine", "lr_min", lr_min, low_open=False, high=lr))
        if steps_per_epoch is not None and (not isinstance(steps_per_epoch, int) or steps_per_epoch < 1):
            raise ValueError(f"Cosine: steps_per_epoch must be a positive int, got {steps_per_epoch!r}")
        self.steps_per_epoch = steps_per_epoch

    def __call__(self, epoch: int, step: int = 0) -> Any:
        e: float = epoch
        if self.steps_per_epoch:
            e = step / self.steps_per_epoch
        e = min(e, self.epochs)
        return self.lr_min + (self.lr - self.lr_min) * (1 + math.cos(math.pi * e / self.epochs)) / 2


class ReduceOnPlateau(Schedule):
    """Multiply the rate by ``factor`` when the observed metric has not improved for
    ``patience`` epochs (then wait ``cooldown`` epochs before counting again).

    ``mode="min"`` (a loss: improved when ``m < best * (1 - threshold)``) or ``"max"``
    (an accuracy: ``m > best * (1 + threshold)``); the rate never goes below ``min_lr``.
    State (checkpointed): the current rate, ``best``, ``bad_epochs``, ``cooldown_left``.
    """

    def __init__(self, lr: float, factor: float = 0.1, patience: int = 10, threshold: float = 1e-4, mode: str = "min",
                 cooldown: int = 0, min_lr: float = 0.0) -> None:
        super().__init__(lr)
        self.factor = float(_positive("ReduceOnPlateau", "factor", factor, high=1))
        if not isinstance(patience, int) or patience < 0 or not isinstance(cooldown, int) or cooldown < 0:
            raise ValueError(f"ReduceOnPlateau: patience and cooldown must be ints >= 0, got {patience!r}, {cooldown!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceOnPlateau: mode must be 'min' or 'max', got {mode!r}")
        self.patience, self.cooldown, self.mode = patience, cooldown, mode
        self.threshold = float(_positive("ReduceOnPlateau", "threshold", threshold, low_open=False))
        self.min_lr = float(_positive("ReduceOnPlateau", "min_lr", min_lr, low_open=False))
        self._current, self._best, self._bad, self._cooldown = self.lr, None, 0, 0

    def __call__(self, epoch: int, step: int = 0) -> Any:
        return self._current

    def observe(self, metric: Any) -> None:
        """Count an epoch without improvement of ``metric``; cut the rate after ``patience`` of them."""
        metric = float(metric)
        if not math.isfinite(metric):
            raise ValueError(f"ReduceOnPlateau: the observed metric must be finite, got {metric}")
        if self._best is None or self._improved(metric):
            self._best, self._bad = metric, 0
        else:
            self._bad += 1
        if self._cooldown > 0:
            self._cooldown -= 1
            self._bad = 0
        if self._bad > self.patience:
            self._current = max(self._current * self.factor, self.min_lr)
            self._cooldown, self._bad = self.cooldown, 0

    def _improved(self, metric):  # PyTorch's relative threshold
        if self.mode == "min":
            return metric < self._best * (1 - self.threshold)
        return metric > self._best * (1 + self.threshold)

    def state_dict(self) -> dict[str, Any]:
        return {"lr": self._current, "best": self._best, "bad_epochs": self._bad, "cooldown_left": self._cooldown}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._current, self._best = float(state["lr"]), state["best"]
        self._bad, self._cooldown = int(state["bad_epochs"]), int(state["cooldown_left"])


SCHEDULES = {
    "constant": "constant",
    "inverse": "inverse[:DECAY[:step|epoch]]  lr / (1 + t decay) (Torch7; default decay 1e-4 per step)",
    "step": "step:EVERY[:GAMMA]  lr * GAMMA^floor(epoch / EVERY) (default GAMMA 0.1)",
    "exp": "exp:GAMMA  lr * GAMMA^epoch",
    "cosine": "cosine[:LR_MIN]  cosine annealing to LR_MIN over the run, per step",
    "plateau": "plateau[:FACTOR[:PATIENCE]]  x FACTOR after PATIENCE epochs without a better validation loss",
}


def parse_schedule(spec: Any, lr: float, epochs: int | None = None, steps_per_epoch: Any = None) -> Schedule:
    """Build a schedule from ``"NAME[:ARG...]"`` (see :data:`SCHEDULES`)."""
    name, *args = str(spec).split(":")
    try:
        if name == "constant" and not args:
            return Schedule(lr)
        if name == "inverse" and len(args) <= 2:
            return InverseTime(lr, float(args[0]) if args else 1e-4, args[1] if len(args) > 1 else "step")
        if name == "step" and 1 <= len(args) <= 2:
            return StepDecay(lr, int(args[0]), float(args[1]) if len(args) > 1 else 0.1)
        if name == "exp" and len(args) == 1:
            return Exponential(lr, float(args[0]))
        if name == "cosine" and len(args) <= 1:
            if epochs is None:
                raise ValueError("cosine needs the number of epochs")
            return Cosine(lr, epochs, float(args[0]) if args else 0.0, steps_per_epoch)
        if name == "plateau" and len(args) <= 2:
            return ReduceOnPlateau(lr, float(args[0]) if args else 0.1, int(args[1]) if len(args) > 1 else 2)
    except ValueError as exc:
        raise ValueError(f"schedule {spec!r}: {exc}") from None
    raise ValueError(f"unknown schedule {spec!r}; one of:\n  " + "\n  ".join(SCHEDULES.values()))
