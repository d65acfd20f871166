"""ember.optim: optimizers as functions ``optim.X(feval, x, config, state) -> (x, [fx])``.

``x`` is the flat parameter vector from ``module.get_parameters()``; ``feval(x)``
returns the loss and the flat gradient, exactly as in the lecture's training loop.
Each function follows Torch7's optim package (same defaults and order of operations,
snake_case names); ``state`` is a plain dict that can be checkpointed (keys starting
with ``"_"`` are scratch space and are not saved).
"""

from .adadelta import adadelta
from .adagrad import adagrad
from .adam import adam
from .adamax import adamax
from .adamw import adamw
from .asgd import asgd
from .cg import cg
from .checkgrad import checkgrad, rosenbrock
from .confusion import ConfusionMatrix
from .fista import fista, ista, soft_threshold
from .lbfgs import lbfgs
from .logger import Logger
from .lswolfe import lswolfe, polyinterp
from .nag import nag
from .plot import plot_csv
from .regularization import MaxNorm, WeightDecay, clip_grad_norm, parameter_mask
from .rmsprop import rmsprop
from .rprop import rprop
from .schedules import Constant, Cosine, Exponential, InverseTime, ReduceOnPlateau, Schedule, StepDecay, parse_schedule
from .sgd import sgd

#: every optimizer by name (``ember train --optimizer NAME``)
OPTIMIZERS = {
    f.__name__: f for f in (sgd, nag, adam, adamw, adagrad, adadelta, rmsprop, adamax, asgd, rprop, lbfgs, cg)
}

__all__ = [
    "sgd", "nag", "adam", "adamw", "adagrad", "adadelta", "rmsprop", "adamax", "asgd", "rprop",
    "lbfgs", "lswolfe", "polyinterp", "cg", "checkgrad", "rosenbrock", "OPTIMIZERS",
    # schedules
    "Schedule", "Constant", "InverseTime", "StepDecay", "Exponential", "Cosine", "ReduceOnPlateau", "parse_schedule",
    # regularization
    "WeightDecay", "MaxNorm", "clip_grad_norm", "parameter_mask",
    # logs and plots
    "Logger", "ConfusionMatrix", "plot_csv",
    # proximal methods (sparse coding, ember.unsup)
    "fista", "ista", "soft_threshold",
]  # fmt: skip
