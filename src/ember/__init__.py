"""ember: the module-based deep learning of LeCun & Ranzato's lecture (the Torch7 nn way).

    import ember
    from ember import nn
    net = nn.Sequential(nn.Linear(784, 1000), nn.ReLU(), nn.Linear(1000, 10), nn.LogSoftMax())
"""

from . import data, models, nn, optim
from .backend import Backend, get_backend
from .errors import FormatError, ShapeError, TrainingError
from .io import load, save
from .nn.init import manual_seed

__version__ = "0.1.0"

__all__ = [
    "nn", "optim", "data", "models", "Backend", "get_backend", "ShapeError", "TrainingError", "FormatError",
    "load", "save", "manual_seed", "__version__",
]  # fmt: skip
