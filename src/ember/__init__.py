"""ember: the module-based deep learning of LeCun & Ranzato's lecture (the Torch7 nn way).

    import ember
    from ember import nn
    net = nn.Sequential(nn.Linear(784, 1000), nn.ReLU(), nn.Linear(1000, 10), nn.LogSoftMax())
"""

import os as _os
import sys as _sys

# OpenBLAS's idle worker threads spin for about 2^28 cycles (~0.1 s) after each matrix
# product, holding the core that ember's helper thread needs for the array work between
# products (im2col, col2im, pooling; see docs/convnets.md). 2^20 cycles (~0.3 ms) keeps
# back-to-back products just as fast. OpenBLAS reads this when NumPy is first imported,
# so it only takes effect when ember is imported before NumPy; otherwise (unless the
# variable was set) ember keeps its own array work on one thread.
BLAS_IDLE_SHORT = "numpy" not in _sys.modules or "OPENBLAS_THREAD_TIMEOUT" in _os.environ
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "20")

from . import data, models, nn, optim  # noqa: E402
from .backend import Backend, get_backend  # noqa: E402
from .errors import FormatError, ShapeError, TrainingError  # noqa: E402
from .io import load, save  # noqa: E402
from .t7 import load_t7  # noqa: E402
from .nn.init import manual_seed  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "nn", "optim", "data", "models", "Backend", "get_backend", "ShapeError", "TrainingError", "FormatError",
    "load", "save", "load_t7", "manual_seed", "__version__",
]  # fmt: skip
