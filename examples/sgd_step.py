"""The lecture's training step, shared by the examples: a ``feval`` closure for ``optim.sgd``."""

from __future__ import annotations

from ember import optim


def sgd_step(net, criterion, params, grads, config, inputs, target):
    """One ``optim.sgd`` step on a minibatch; ``params, grads = net.get_parameters()``.

    feval(x): zero the gradients, forward, loss, backward; returns (loss, flat gradient).
    Returns the minibatch loss (before the step).
    """

    def feval(_):
        net.zero_grad_parameters()
        out = net.forward(inputs)
        loss = criterion.forward(out, target)
        net.backward(inputs, criterion.backward(out, target))
        return loss, grads

    return optim.sgd(feval, params, config)[1][0]
