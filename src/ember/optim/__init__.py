"""ember.optim: optimizers as functions ``optim.X(feval, x, config, state) -> (x, [fx])``.

``x`` is the flat parameter vector from ``module.get_parameters()``; ``feval(x)``
returns the loss and the flat gradient, exactly as in the lecture's training loop.
"""

from .sgd import sgd

__all__ = ["sgd"]
