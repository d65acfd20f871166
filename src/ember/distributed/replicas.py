"""What makes a rank's share of a batch behave exactly like its rows of the whole batch:
batch normalization with statistics over the global batch, and dropout noise drawn
for the global batch (each rank keeps its rows).

Both read :class:`BatchShare`, which the training loop updates before every step.
"""

from __future__ import annotations

import numpy as np

from ..backend import axpby, to_numpy
from ..errors import shape_error
from ..nn.batchnorm import BatchNormalization
from ..nn._layout import ensure_like


class BatchShare:
    """This rank's part of the current global batch: ``size`` samples in all, rows
    ``start:stop`` here, and ``weight`` (stop - start) / size, or 1 for criteria that sum
    instead of averaging."""

    def __init__(self):
        self.size, self.start, self.stop, self.weight = 0, 0, 0, 1.0


class ShardedGenerator:
    """Stands in for a module's ``numpy.random.Generator`` (Dropout's ``rng``): a
    ``random(out=...)`` call for this rank's rows draws the noise of the whole global
    batch from the shared generator and keeps rows ``start:stop``, so the generators
    of all ranks advance together and the masks equal the single-process ones. Other
    calls go to the generator unchanged. (C-ordered masks; CuPy draws on the GPU
    instead and is not reproducible across rank counts.)"""

    def __init__(self, generator, share: BatchShare):
        self.generator, self.share = generator, share

    def random(self, size=None, dtype=np.float64, out=None):
        """``Generator.random``; into a batch-shaped ``out``: this rank's rows of the
        global batch's draw."""
        s = self.share
        if out is None or out.ndim == 0 or out.shape[0] != s.stop - s.start or s.size == out.shape[0]:
            return self.generator.random(size, dtype=dtype, out=out)
        whole = self.generator.random((s.size,) + out.shape[1:], dtype=dtype)
        out[...] = whole[s.start : s.stop]
        return out

    def __getattr__(self, name):
        return getattr(self.generator, name)


def _sum64(xp, array, axes):
    return to_numpy(xp.sum(array, axis=axes, dtype=xp.float64)).reshape(-1)


def sync_batchnorm(module: BatchNormalization, group, share: BatchShare):
    """Make ``module`` (Spatial)BatchNormalization use the statistics of the global batch
    while training: forward sums x and (x - mean)^2 over all ranks (two small
    allreduces), backward sums dE/dy and dE/dy x^ over all ranks, in the units of the
    global loss (each rank's weight). Evaluation mode is unchanged. Every rank must
    hold at least one sample of every batch."""
    plain_forward, plain_backward = module.update_output, module.update_grad_input
    seen = {}  # the global count of values per feature, from the last forward

    def update_output(input):
        if not module.train:
            return plain_forward(input)
        axes, xp, shape, c = module._check(input), module.backend.xp, module._stat_shape(), module.n_output
        mean = module.mean = module._fit(module.mean, shape)  # BatchNormalization's declared state
        invstd = module.invstd = module._fit(module.invstd, shape)
        out = module.output = ensure_like(module.backend, module.output, input)
        sums = group.allreduce(np.append(_sum64(xp, input, axes), input.size // c), "batch-norm statistics")
        count = seen["count"] = sums[c]
        if count < 2:
            raise shape_error(module, "more than one value per feature over all ranks in training mode", input)
        mean[...] = xp.asarray((sums[:c] / count).reshape(shape))
        xp.subtract(input, mean, out=out)
        squares = group.allreduce(_sum64(xp, out * out, axes), "batch-norm statistics")
        invstd[...] = xp.asarray((squares / count).reshape(shape))  # biased variance of the global batch
        m = module.momentum
        axpby(m, mean.reshape(-1), 1 - m, module.running_mean)
        axpby(m * count / (count - 1), invstd.reshape(-1), 1 - m, module.running_var)
        invstd += module.eps
        return module._normalize(out)

    def update_grad_input(input, grad_output):
        if not module.train:
            return plain_backward(input, grad_output)
        axes, xp, shape, c = module._check(input), module.backend.xp, module._stat_shape(), module.n_output
        gx = module.grad_input = ensure_like(module.backend, module.grad_input, input)
        normalized = module.normalized
        factor = module.invstd * (module.weight.reshape(shape) if module.affine else 1)
        # this rank's dE/dy is the global one divided by its weight: sum in global units, come back
        local = np.concatenate([_sum64(xp, grad_output, axes), _sum64(xp, grad_output * normalized, axes)])
        sums = group.allreduce(local * share.weight, "batch-norm gradients") / share.weight
        count = seen["count"]
        sum_g, sum_gx = (xp.asarray(sums[i * c : (i + 1) * c].reshape(shape)) for i in (0, 1))
        xp.multiply(normalized, sum_gx * (-1.0 / count), out=gx)
        gx += grad_output
        gx -= sum_g * (1.0 / count)
        gx *= factor
        return gx

    module.update_output, module.update_grad_input = update_output, update_grad_input  # type: ignore[method-assign]
