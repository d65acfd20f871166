"""Cases for ember.unsup: the sparse-coding energies, PSD, LISTA, auto-encoders (see cases.py).

The energy modules infer their codes by FISTA; their bprop (envelope theorem) is exact at
the minimum, so the cases run FISTA to convergence (``err_thres`` 1e-13) on small problems.
"""

from __future__ import annotations

import numpy as np
from cases import Case, criterion_case, normal, torch_params

from ember import unsup

TIGHT = {"max_iter": 5000, "err_thres": 1e-13}


def _noisy_reseed(module):
    module.rng = np.random.default_rng(7)


def _with_gains(make):
    """A module whose Diag gains are drawn away from their initial 1 (so the check sees them)."""

    def build(rng):
        module = make(rng)
        for diag in module.find_modules(unsup.Diag):
            diag.weight[...] = rng.uniform(0.5, 1.5, size=diag.weight.shape)
        return module

    return build


def _lista_torch(m, torch):
    w, s, theta = torch_params(torch, m.weight, m.lateral, m.threshold)

    def shrink(c, k):
        t = theta if m.tied else theta[k]
        return torch.sign(c) * torch.relu(c.abs() - t)

    def fn(x):
        b = x @ w.T
        z = shrink(b, 0)
        for k in range(1, m.n_steps):
            z = shrink(b + z @ (s if m.tied else s[k - 1]).T, k)
        return z

    pairs = [(m.weight, w), (m.threshold, theta)] + ([(m.lateral, s)] if m.n_steps > 1 else [])  # S unused in one step
    return fn, pairs


def _autoencoder_torch(m, torch):
    if m.tied:
        w, b, c = torch_params(torch, m.weight, m.bias, m.decoder_bias)
        return (lambda x: torch.tanh(x @ w.T + b) @ w + c), [(m.weight, w), (m.bias, b), (m.decoder_bias, c)]
    w, b, d, c = torch_params(torch, m.weight, m.bias, m.decoder_weight, m.decoder_bias)
    fn = lambda x: torch.tanh(x @ w.T + b) @ d.T + c  # noqa: E731
    return fn, [(m.weight, w), (m.bias, b), (m.decoder_weight, d), (m.decoder_bias, c)]


CASES = [
    Case("FistaL1", lambda rng: unsup.FistaL1(6, 4, lambd=0.1, rng=rng, **TIGHT), normal(3, 6)),
    Case("FistaL1-overcomplete", lambda rng: unsup.FistaL1(4, 6, lambd=0.2, rng=rng, **TIGHT), normal(2, 4)),
    Case("PSD", _with_gains(lambda rng: unsup.PSD(6, 5, lambd=0.1, alpha=0.5, rng=rng, **TIGHT)), normal(3, 6)),
    Case("SpatialConvFistaL1", lambda rng: unsup.SpatialConvFistaL1(1, 2, 2, 2, lambd=0.3, rng=rng, **TIGHT),
         normal(1, 1, 4, 3)),
    Case("ConvPSD", _with_gains(lambda rng: unsup.ConvPSD(1, 2, 2, 2, lambd=0.1, alpha=0.5, rng=rng, **TIGHT)),
         normal(1, 1, 4, 3)),
    Case("LISTA", lambda rng: unsup.LISTA(6, 5, n_steps=3, rng=rng), normal(3, 6), torch=_lista_torch),
    Case("LISTA-one-step", lambda rng: unsup.LISTA(6, 5, n_steps=1, rng=rng), normal(3, 6), torch=_lista_torch),
    Case("LISTA-untied", lambda rng: unsup.LISTA(6, 5, n_steps=3, rng=rng, tied=False), normal(3, 6), torch=_lista_torch),
    Case("AutoEncoder-tied", lambda rng: unsup.AutoEncoder(6, 4, rng=rng), normal(3, 6), torch=_autoencoder_torch),
    Case("AutoEncoder-untied", lambda rng: unsup.AutoEncoder(6, 4, tied=False, rng=rng), normal(3, 6),
         torch=_autoencoder_torch),
    Case("AutoEncoder-denoising", lambda rng: unsup.AutoEncoder(6, 4, noise=0.3, rng=rng), normal(3, 6),
         reseed=_noisy_reseed),
    Case("Diag", _with_gains(lambda rng: unsup.Diag(5)), normal(3, 5)),
    Case("Diag-maps", _with_gains(lambda rng: unsup.Diag(3)), normal(2, 3, 2, 4)),
    criterion_case("L1Cost", lambda: unsup.L1Cost(), normal(3, 5, away=(0, 0.05)), lambda rng: None),
    criterion_case("L1Cost-size-average", lambda: unsup.L1Cost(size_average=True), normal(3, 5, away=(0, 0.05)),
                   lambda rng: None),
]
