"""Predictive Sparse Decomposition (Kavukcuoglu, Ranzato & LeCun 2008): sparse coding plus a
fast encoder trained to predict the codes, so features cost one feed-forward pass."""

from __future__ import annotations

from .. import nn
from ..errors import check_positive
from .costs import Diag
from .sparse_coding import FistaL1, SpatialConvFistaL1


def _check_alpha(name, alpha):
    if not isinstance(alpha, int | float) or not alpha > 0:
        raise ValueError(f"{name}: alpha must be a number > 0, got {alpha!r}")
    return float(alpha)


class PSD(FistaL1):
    """PSD with a linear dictionary (Torch7 ``unsup.PSD``). The joint energy of the paper::

        E(x, z) = 1/2 ||x - D z||^2 + lambd |z|_1 + alpha/2 ||z - F(x)||^2
        F(x)    = g . tanh(W_e x + b_e)             (encoder Linear -> Tanh -> Diag)

    ``PSD(input_size, code_size, lambd=0.1, alpha=1.0, max_iter=100, err_thres=1e-4,
    line_search=False)``. ``encoder`` is the ``Sequential(Linear, Tanh, Diag)``;
    ``decoder`` the dictionary (unit-norm atoms) as in :class:`FistaL1`. The forward infers
    ``z* = argmin_z E(x, z)`` by FISTA started from the prediction F(x) (step 1/L,
    L = ||D||_2^2 + alpha) and returns each sample's ``E(x_n, z*_n)`` (N,).

    bprop (envelope theorem, z* fixed; g = dE/dE_n):
      to input:         dE/dx  = g (x - D z*) + (dF/dx)^T (-alpha g (z* - F(x)))
      to the decoder:   dE/dD += scale * g (D z* - x) z*^T
      to the encoder:   dE/dW_F += scale * (dF/dW_F)^T (-alpha g (z* - F(x)))
    so one gradient step on E trains the dictionary to reconstruct from sparse codes and
    the encoder to predict them (``fit_batch``). Features: ``encode(x)`` = F(x) (fast,
    what a recognition stage uses) or ``infer(x)`` = z* (optimal, slow).
    """

    def __init__(self, input_size, code_size, lambd=0.1, alpha=1.0, max_iter=100, err_thres=1e-4,
                 line_search=False, rng=None):  # fmt: skip
        super().__init__(input_size, code_size, lambd, max_iter, err_thres, line_search, rng=rng)
        self.alpha = _check_alpha("PSD", alpha)
        self.encoder = nn.Sequential(nn.Linear(input_size, code_size, rng=rng), nn.Tanh(), Diag(code_size))

    def encode(self, input):
        """F(x), the encoder's prediction of the codes (a copy)."""
        return self.encoder.forward(input).copy()


class ConvPSD(SpatialConvFistaL1):
    """Convolutional PSD (Torch7 ``unsup.ConvPsd``; Kavukcuoglu et al. 2010), a first stage of a
    multistage net: the dictionary is a bank of kh x kw atoms convolved with K code maps
    (:class:`SpatialConvFistaL1`), the encoder ``SpatialConvolution(C -> K, kw, kh) -> Tanh
    -> Diag(K)`` (one gain per map) predicts the code maps. Same joint energy and bprop as
    :class:`PSD`; input (N, C, H, W), codes (N, K, H-kh+1, W-kw+1), output (N,).

    ``ConvPSD(n_input_plane, n_code_plane, kw, kh, lambd=0.1, alpha=1.0, max_iter=100,
    err_thres=1e-4, line_search=True)``. After training, ``encoder`` (or ``encode(x)``)
    is the filter bank + non-linearity of the stage.
    """

    def __init__(self, n_input_plane, n_code_plane, kw, kh, lambd=0.1, alpha=1.0, max_iter=100, err_thres=1e-4,
                 line_search=True, rng=None):  # fmt: skip
        check_positive("ConvPSD", n_input_plane=n_input_plane, n_code_plane=n_code_plane, kw=kw, kh=kh)
        super().__init__(n_input_plane, n_code_plane, kw, kh, lambd, max_iter, err_thres, line_search, rng=rng)
        self.alpha = _check_alpha("ConvPSD", alpha)
        self.encoder = nn.Sequential(nn.SpatialConvolution(n_input_plane, n_code_plane, kw, kh, rng=rng), nn.Tanh(),
                                     Diag(n_code_plane))  # fmt: skip

    def encode(self, input):
        """F(x), the encoder's prediction of the code maps (a copy)."""
        return self.encoder.forward(input).copy()


__all__ = ["PSD", "ConvPSD"]
