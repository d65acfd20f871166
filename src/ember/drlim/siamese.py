"""DrLIM: learning an invariant mapping with a siamese net and a contrastive loss.

(Hadsell, Chopra & LeCun, "Dimensionality Reduction by Learning an Invariant Mapping",
CVPR 2006.) One network G -- the same weights on both branches -- maps two images to
z1 = G(x1), z2 = G(x2); with D = ||z1 - z2|| and Y = 0 for a similar pair, 1 for a
dissimilar one, the loss of a pair is

    L = (1 - Y) * 1/2 * D^2  +  Y * 1/2 * max(0, m - D)^2

Similar pairs are pulled together; dissimilar pairs are pushed apart until they are
at least the margin m apart. "Similar" here means pose neighbours (see
:func:`ember.drlim.manifold.pose_neighbours`), whatever the lighting, so the map learns pose
and ignores lighting without ever being told what pose is.

The siamese pair is built the Torch7 way: ``ParallelTable(net, net.clone("weight",
"bias"))`` -- the clone shares the parameters *and* their gradients, so both branches'
bprop contributions land in one flat gradient vector that the optimizer steps on -- and
the loss is ``nn.ContrastiveCriterion(m)`` on the table [G(x1), G(x2)].
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import time

import numpy as np

from .. import nn, optim
from ..errors import TrainingError
from .manifold import pose_neighbours
from .._typing import Array, RNG
from numpy.random import Generator


if TYPE_CHECKING:
    from ..nn.module import Criterion, Module

ARCHS = ("conv", "mlp")


class PairSampler:
    """Balanced pairs from the neighbourhood graph of a set of images.

    ``sample(n_similar, n_dissimilar)`` returns index arrays ``(i, j)`` and the labels
    ``y`` (0 similar, 1 dissimilar): anchors are uniform over the images; a similar
    partner is uniform over the anchor's pose neighbours (itself excluded), a
    dissimilar partner uniform over the others. Sampling uniform pairs instead would give
    about 5% similar pairs, too few to close the azimuth loop.
    """

    def __init__(self, az: Any, el: Any, n_azimuth: int, rng: np.random.Generator) -> None:
        similar = pose_neighbours(az, el, n_azimuth)
        np.fill_diagonal(similar, False)
        dissimilar = ~pose_neighbours(az, el, n_azimuth)
        if not similar.any(axis=1).all():
            raise ValueError("PairSampler: some image has no pose neighbour in the training set")
        self._similar = self._rows(similar)
        self._dissimilar = self._rows(dissimilar)
        self.n = len(az)
        self.rng = rng

    @staticmethod
    def _rows(mask):
        counts = mask.sum(axis=1)
        return np.concatenate([[0], np.cumsum(counts)[:-1]]), counts, np.nonzero(mask)[1]

    def _partners(self, anchors, rows):
        start, counts, columns = rows
        pick = (self.rng.random(len(anchors)) * counts[anchors]).astype(np.int64)
        return columns[start[anchors] + pick]

    def sample(self, n_similar: int, n_dissimilar: int) -> tuple[Any, Any, Any]:
        """Index pairs ``(i, j)`` and labels ``y`` (0 similar, 1 dissimilar): ``n_similar`` then ``n_dissimilar``."""
        a_sim = self.rng.integers(0, self.n, n_similar)
        a_dis = self.rng.integers(0, self.n, n_dissimilar)
        i = np.concatenate([a_sim, a_dis])
        j = np.concatenate([self._partners(a_sim, self._similar), self._partners(a_dis, self._dissimilar)])
        y = np.concatenate([np.zeros(n_similar), np.ones(n_dissimilar)])
        return i, j, y


def embedding_net(image_shape: Any, out_dim: int = 3, arch: str = "conv", rng: RNG = None) -> Any:
    """The map G: images (N, 1, H, W) -> (N, out_dim).

    ``conv``: conv 5x5 1->8, ReLU, max 2x2, conv 5x5 8->16, ReLU, max 2x2, Linear -> out_dim
    (needs H, W >= 16). ``mlp``: Linear(H*W -> 64), ReLU, Linear(64 -> out_dim).
    """
    h, w = image_shape
    if arch == "mlp":
        return nn.Sequential(nn.Reshape(h * w), nn.Linear(h * w, 64, rng=rng), nn.ReLU(), nn.Linear(64, out_dim, rng=rng))
    if arch != "conv":
        raise ValueError(f"embedding_net: arch must be one of {ARCHS}, got {arch!r}")
    if not hasattr(nn, "SpatialConvolution"):
        raise ValueError("embedding_net: this ember has no nn.SpatialConvolution yet; use arch='mlp'")
    oh, ow = ((h - 4) // 2 - 4) // 2, ((w - 4) // 2 - 4) // 2
    if oh < 1 or ow < 1:
        raise ValueError(f"embedding_net: the conv net needs images of at least 16x16, got {h}x{w}; use arch='mlp'")
    return nn.Sequential(
        nn.SpatialConvolution(1, 8, 5, 5, rng=rng), nn.ReLU(), nn.SpatialMaxPooling(2, 2, 2, 2),
        nn.SpatialConvolution(8, 16, 5, 5, rng=rng), nn.ReLU(), nn.SpatialMaxPooling(2, 2, 2, 2),
        nn.Reshape(16 * oh * ow), nn.Linear(16 * oh * ow, out_dim, rng=rng),
    )  # fmt: skip


def siamese_net(net: Module) -> Any:
    """``ParallelTable(net, twin)``: [x1, x2] -> [G(x1), G(x2)], where the twin is
    ``net.clone("weight", "bias")`` -- one set of weights and one set of gradient arrays
    (call ``get_parameters`` on the result, not on ``net``)."""
    return nn.ParallelTable(net, net.clone("weight", "bias"))


def siamese_feval(siamese: Module, criterion: Criterion, grads: Array, x1: Array, x2: Array, y: Array) -> Any:
    """The lecture's closure ``feval(x) -> (loss, dloss/dx)`` for one batch of pairs.

    fprop [x1, x2] through both branches, the criterion on [G(x1), G(x2)] and y, then
    bprop: each branch adds its share of dL/dW into the one shared gradient vector.
    """

    def feval(_):
        grads.fill(0)
        z = siamese.forward([x1, x2])
        loss = criterion.forward(z, y)
        siamese.backward([x1, x2], criterion.backward(z, y))
        return loss, grads

    return feval


def standardize(images: Array, fit_index: Any) -> Any:
    """Images as float32 (N, 1, H, W), scaled by the mean and std of the fit images."""
    x = images.astype(np.float32) / 255.0
    mean, std = x[fit_index].mean(), x[fit_index].std() + 1e-8
    return ((x - mean) / std)[:, None, :, :].astype(np.float32)


def embed(net: Module, x: Array, batch_size: int = 256) -> np.ndarray:
    """G(x) for all rows of x, in evaluation mode, as a new float64 array."""
    net.evaluate()
    out = [np.array(net.forward(x[s : s + batch_size]), dtype=np.float64) for s in range(0, len(x), batch_size)]
    net.training()
    return np.concatenate(out)


def train_drlim(pose_set: Any, steps: int = 2000, pairs: int = 64, margin: float = 1.0, arch: str = "conv", out_dim: int = 3, optimizer: str = "adam",
                learning_rate: float | None = None, momentum: float = 0.9, seed: int = 0, log: Any = None, log_every: int = 200) -> tuple[Any, Any, Any]:  # fmt: skip
    """Train G on the fit images of ``pose_set``; returns ``(net, x, history)``.

    Each step draws ``pairs`` similar and ``pairs`` dissimilar pairs of fit images, runs
    x1 through ``net`` and x2 through its weight-sharing clone, and takes one optimizer
    step (``optimizer``: "adam" [lr 1e-3] or "sgd" with ``momentum`` [lr 0.01]) on the
    mean contrastive loss. ``x`` is every image standardized, ready for :func:`embed`;
    ``history`` lists ``(step, mean loss since the last log)``.
    """
    rng = np.random.default_rng(seed)
    fit = pose_set.train_index
    x = standardize(pose_set.images, fit)
    net = embedding_net(pose_set.images.shape[1:], out_dim, arch, rng=rng)
    net.compute_grad_input = False  # the input is data: no dE/dx below the first layer
    siamese = siamese_net(net)
    params, grads = siamese.get_parameters()
    criterion = nn.ContrastiveCriterion(margin)
    sampler = PairSampler(pose_set.az_index[fit], pose_set.el_index[fit], pose_set.n_azimuth, rng)
    step_fn, config = _optimizer(optimizer, learning_rate, momentum)
    state: dict[str, Any] = {}
    history, running, t0 = [], [], time.perf_counter()

    for step in range(1, steps + 1):
        i, j, y = sampler.sample(pairs, pairs)
        feval = siamese_feval(siamese, criterion, grads, x[fit[i]], x[fit[j]], y)
        _, (loss,) = step_fn(feval, params, config, state)
        if not np.isfinite(loss) or not np.isfinite(params).all():
            raise TrainingError(f"train_drlim: the loss became {loss} at step {step}; lower the learning rate")
        running.append(loss)
        if step % log_every == 0 or step == steps:
            history.append((step, float(np.mean(running))))
            running = []
            if log is not None:
                log(f"step {step:5d}  loss {history[-1][1]:.4f}  ({time.perf_counter() - t0:.0f} s)")
    return net, x, history


def _optimizer(name, learning_rate, momentum):
    if name == "adam":
        if not hasattr(optim, "adam"):
            raise ValueError("train_drlim: this ember has no optim.adam yet; use optimizer='sgd'")
        return optim.adam, {"learning_rate": 1e-3 if learning_rate is None else learning_rate}
    if name == "sgd":
        config = {"learning_rate": 0.01 if learning_rate is None else learning_rate, "momentum": momentum}
        if momentum:
            config["dampening"] = 0.0
        return optim.sgd, config
    raise ValueError(f"train_drlim: optimizer must be 'adam' or 'sgd', got {name!r}")


__all__ = ["PairSampler", "siamese_net", "siamese_feval", "embedding_net", "standardize", "embed", "train_drlim", "ARCHS"]
