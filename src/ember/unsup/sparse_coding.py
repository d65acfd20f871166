"""Sparse coding with a learned dictionary: FISTA inference of the codes, the energy as a module.

The energy of an input x under a dictionary D (the decoder, a linear map from codes to inputs)::

    E(x, z; D) = 1/2 ||x - D z||^2 + lambda |z|_1          (+ alpha/2 ||z - F(x)||^2 for PSD)
    E(x; D)    = min_z E(x, z; D),   z*(x) = argmin_z E(x, z; D)   (inferred by FISTA)

The module's output is the per-sample energy ``E(x_n; D)`` at the inferred code. Its bprop
uses the envelope theorem (z* is a minimum, so dE/dz* = 0 and z* is held fixed):
``dE/dx = x - D z*`` and ``dE/dD = -(x - D z*) z*^T``. Learning the dictionary is then plain
gradient descent on the energy, followed by rescaling every atom (column of D) to unit
norm (without it the L1 term is beaten by shrinking z and growing D).
"""

from __future__ import annotations


from typing import Any

from .. import nn
from ..errors import ShapeError, check_positive, shape_error
from ..nn.module import Composite, backprop, saved
from ..optim.fista import fista, soft_threshold


class _SparseCoding(Composite):
    """The shared machinery: FISTA inference, per-sample energies, envelope bprop.

    A subclass sets ``self.decoder`` (a linear module without bias: codes -> inputs),
    optionally ``self.encoder`` (inputs -> codes, with the weight ``alpha`` of its
    prediction error), and implements ``_check_input``, ``_code_shape``,
    ``_lipschitz_decoder`` and ``_atom_axes``.
    """

    code = saved("z*, the codes inferred by the last forward")
    residual = saved("D z* - x of the last forward")
    prediction = saved("F(x), the encoder's prediction of the codes (PSD)")
    prediction_error = saved("z* - F(x) of the last forward (PSD)")
    lipschitz = saved("the Lipschitz constant of the smooth part's gradient at the last forward")
    history = saved("FISTA's history of the last inference (iterations, L, energies)")

    encoder: Any = None
    decoder: Any = None
    alpha = 0.0

    def _check_input(self, input):
        raise NotImplementedError

    def _code_shape(self, input) -> tuple:
        raise NotImplementedError

    def _atom_axes(self) -> tuple:
        raise NotImplementedError

    def _lipschitz_decoder(self) -> float:
        raise NotImplementedError

    def _setup(self, lambd, max_iter, err_thres, line_search):
        if not isinstance(lambd, int | float) or not lambd >= 0:
            raise ValueError(f"{type(self).__name__}: lambd must be a number >= 0, got {lambd!r}")
        check_positive(type(self).__name__, max_iter=max_iter)
        if not isinstance(err_thres, int | float) or not err_thres >= 0:
            raise ValueError(f"{type(self).__name__}: err_thres must be a number >= 0, got {err_thres!r}")
        self.lambd = float(lambd)
        self.fista_config = {"max_iter": int(max_iter), "err_thres": float(err_thres), "line_search": bool(line_search)}

    def children(self):
        return [m for m in (self.encoder, self.decoder) if m is not None]

    @property
    def dictionary(self):
        """The decoder's weight D (its atoms are :meth:`normalize_dictionary`'s units)."""
        return self.decoder.weight

    def normalize_dictionary(self, eps: float = 1e-12):
        """Rescale every atom of D to unit L2 norm, in place (after each gradient step)."""
        w = self.decoder.weight
        norms = self.backend.xp.sqrt((w * w).sum(axis=self._atom_axes(), keepdims=True))
        w /= norms + eps
        return self

    # ------------------------------------------------------------------ inference
    def _smooth(self, input, prediction):
        """f(z) = 1/2 ||x - D z||^2 (+ alpha/2 ||z - F(x)||^2) for :func:`fista`."""
        xp, decoder, alpha = self.backend.xp, self.decoder, self.alpha

        def f(z, need_grad):
            residual = decoder.update_output(z) - input  # D z - x
            value = 0.5 * float(xp.vdot(residual, residual))
            if prediction is not None:
                error = z - prediction
                value += 0.5 * alpha * float(xp.vdot(error, error))
            if not need_grad:
                return value
            grad = decoder.update_grad_input(z, residual)  # D^T (D z - x)
            if prediction is not None:
                grad = grad + alpha * error
            return value, grad

        return f

    def infer(self, input):
        """z*(x): the sparse codes of ``input`` by FISTA (runs :meth:`forward`; returns ``code``)."""
        self.forward(input)
        return self.code

    def update_output(self, input):
        self._check_input(input)
        xp = self.backend.xp
        prediction = None
        if self.encoder is not None:
            prediction = self.prediction = self.encoder.forward(input)
            z0 = prediction.copy()
        else:
            z0 = xp.zeros(self._code_shape(input), dtype=self.backend.dtype)
        lam = self.lambd
        self.lipschitz = self._lipschitz_decoder() + self.alpha
        state = {"L": max(self.lipschitz, 1e-12)}
        code, self.history = fista(
            self._smooth(input, prediction),
            lambda z: lam * float(xp.abs(z).sum()),
            lambda z, L: soft_threshold(z, lam / L, out=z),
            z0, dict(self.fista_config), state,
        )  # fmt: skip
        self.code = code
        self.residual = self.decoder.update_output(code) - input  # the decoder's last forward is at z*
        n = input.shape[0]
        energy = 0.5 * (self.residual * self.residual).reshape(n, -1).sum(axis=1)
        energy += lam * xp.abs(code).reshape(n, -1).sum(axis=1)
        if prediction is not None:
            self.prediction_error = code - prediction
            energy += 0.5 * self.alpha * (self.prediction_error**2).reshape(n, -1).sum(axis=1)
        self.output = self.backend.ensure(self.output, (n,))
        self.output[...] = energy
        return self.output

    def _backprop(self, input, grad_output, scale, need_input, need_params):
        if self.code is None or grad_output.shape != (input.shape[0],):
            raise ShapeError(f"{self!r}: backward needs a forward first and grad_output of shape "
                             f"({input.shape[0]},) (one dE/dE_n per sample), got {getattr(grad_output, 'shape', grad_output)}")
        g = grad_output.reshape((-1,) + (1,) * (input.ndim - 1))
        encoder_grad = None
        if self.encoder is not None:
            # E depends on F(x) through alpha/2 ||z* - F(x)||^2: dE/dF = -alpha (z* - F(x))
            go = (-self.alpha * g) * self.prediction_error
            encoder_grad = backprop(self.encoder, input, go, scale, need_input, need_params)
        if need_params:
            # dE/d(D z*) = D z* - x: the decoder accumulates dE/dD = (D z* - x) z*^T
            self.decoder.acc_grad_parameters(self.code, g * self.residual, scale)
        if need_input:
            gx = self.grad_input = self.backend.ensure(self.grad_input, input.shape)
            self.backend.xp.multiply(self.residual, -g, out=gx)  # dE/dx = x - D z*
            if encoder_grad is not None:
                gx += encoder_grad

    # ------------------------------------------------------------------ training
    def fit_batch(self, input, learning_rate: float) -> float:
        """One step of learning on a batch: infer z*, ``W -= learning_rate * dE/dW`` for the
        mean energy, then unit-norm atoms. Returns the mean energy before the step."""
        energies = self.forward(input)
        mean = float(energies.mean())
        self.zero_grad_parameters()
        n = input.shape[0]
        self.backward(input, self.backend.xp.full((n,), 1.0 / n, dtype=self.backend.dtype))
        self.update_parameters(learning_rate)
        self.normalize_dictionary()
        return mean

    def extra_repr(self):
        return f"lambda={self.lambd:g}" + (f", alpha={self.alpha:g}" if self.encoder is not None else "")


class FistaL1(_SparseCoding):
    """Sparse coding with a linear dictionary (Torch7 ``unsup.FistaL1`` / ``LinearFistaL1``).

    ``FistaL1(input_size, code_size, lambd=0.1, max_iter=100, err_thres=1e-4,
    line_search=False)``: D is ``decoder.weight``, (input_size, code_size), atoms (columns)
    of unit norm. Input (N, input_size); output (N,), the energies
    ``E_n = 1/2 ||x_n - D z*_n||^2 + lambd |z*_n|_1`` at the codes ``code`` (N, code_size)
    that FISTA infers (from z = 0, step 1/L with L = ||D||_2^2, the Lipschitz constant of
    the reconstruction gradient, so no line search is needed; ``err_thres`` is FISTA's
    stopping rule on the relative change of z).

    fprop:            z* = argmin_z E(x, z);  E_n = E(x_n, z*_n)
    bprop to input:   dE/dx_n = g_n (x_n - D z*_n)          (g = dE/dE_n, the grad_output)
    bprop to weights: dE/dD += scale * sum_n g_n (D z*_n - x_n) z*_n^T

    Learn: ``fit_batch(x, lr)`` (gradient step on the mean energy, then unit-norm atoms);
    features: ``infer(x)`` (the codes).
    """

    def __init__(self, input_size, code_size, lambd=0.1, max_iter=100, err_thres=1e-4, line_search=False, rng=None):
        super().__init__()
        check_positive("FistaL1", input_size=input_size, code_size=code_size)
        self._setup(lambd, max_iter, err_thres, line_search)
        self.input_size, self.code_size = input_size, code_size
        self.decoder = nn.Linear(code_size, input_size, bias=False, rng=rng)
        self.normalize_dictionary()

    def _check_input(self, input):
        if input.ndim != 2 or input.shape[1] != self.input_size:
            raise shape_error(self, f"input (N, {self.input_size})", input)

    def _code_shape(self, input):
        return (input.shape[0], self.code_size)

    def _atom_axes(self):
        return (0,)

    def _lipschitz_decoder(self):
        w = self.decoder.weight
        return float(self.backend.xp.linalg.norm(w, 2)) ** 2

    def extra_repr(self):
        return f"{self.input_size} -> {self.code_size}, " + super().extra_repr()


def conv_lipschitz(weight, xp, grid: int | None = None, margin: float = 1.05) -> float:
    """An estimate of ``||D||_2^2`` for the stride-1 transposed convolution with ``weight``
    (K, C, kh, kw): the largest squared singular value over frequencies of the kernel's
    Fourier transform (a K x C matrix per frequency), sampled on a grid, times ``margin``."""
    k, c, kh, kw = weight.shape
    grid = grid or 8 * max(kh, kw)
    spectrum = xp.fft.fft2(weight, s=(grid, grid))  # (K, C, grid, grid)
    per_freq = spectrum.transpose(2, 3, 0, 1).reshape(grid * grid, k, c)
    if k == 1 or c == 1:
        top = (abs(per_freq) ** 2).sum(axis=(1, 2))
    else:
        top = xp.linalg.norm(per_freq, ord=2, axis=(1, 2)) ** 2
    return float(top.max()) * margin


class SpatialConvFistaL1(_SparseCoding):
    """Convolutional sparse coding (Torch7 ``unsup.SpatialConvFistaL1``): an image is a sum
    of K feature maps z_k, each convolved with its atom (a kh x kw filter bank per map).

    ``SpatialConvFistaL1(n_input_plane, n_code_plane, kw, kh, lambd=0.1, max_iter=100,
    err_thres=1e-4, line_search=True)``. D is a ``SpatialFullConvolution(n_code_plane,
    n_input_plane, kw, kh)`` without bias (``decoder.weight``, (K, C, kh, kw); each atom
    ``weight[k]`` of unit norm). Input (N, C, H, W); codes (N, K, H-kh+1, W-kw+1);
    output (N,), ``E_n = 1/2 ||x_n - sum_k D_k * z_k||^2 + lambd |z_n|_1``.
    FISTA's gradient of the reconstruction, ``D^T (D z - x)``, is the convolution (a
    correlation) of the residual with the atoms: the decoder's own bprop to its input.
    L starts from the Fourier estimate :func:`conv_lipschitz`; the line search keeps it safe.

    bprop as :class:`FistaL1` (envelope theorem): dE/dx = g (x - D z*),
    dE/dD += scale * (D z* - x) (x) z* (the transposed convolution's weight gradient).
    """

    def __init__(self, n_input_plane, n_code_plane, kw, kh, lambd=0.1, max_iter=100, err_thres=1e-4,
                 line_search=True, rng=None):  # fmt: skip
        super().__init__()
        check_positive("SpatialConvFistaL1", n_input_plane=n_input_plane, n_code_plane=n_code_plane, kw=kw, kh=kh)
        self._setup(lambd, max_iter, err_thres, line_search)
        self.n_input_plane, self.n_code_plane, self.kw, self.kh = n_input_plane, n_code_plane, kw, kh
        self.decoder = nn.SpatialFullConvolution(n_code_plane, n_input_plane, kw, kh, bias=False, rng=rng)
        self.normalize_dictionary()

    def _check_input(self, input):
        if input.ndim != 4 or input.shape[1] != self.n_input_plane or input.shape[2] < self.kh or input.shape[3] < self.kw:
            raise shape_error(self, f"input (N, {self.n_input_plane}, H, W) with H >= {self.kh}, W >= {self.kw}", input)

    def _code_shape(self, input):
        n, _, h, w = input.shape
        return (n, self.n_code_plane, h - self.kh + 1, w - self.kw + 1)

    def _atom_axes(self):
        return (1, 2, 3)

    def _lipschitz_decoder(self):
        return conv_lipschitz(self.decoder.weight, self.backend.xp)

    def extra_repr(self):
        return (f"{self.n_input_plane} -> {self.n_code_plane}, {self.kw}x{self.kh}, " + super().extra_repr())


__all__ = ["FistaL1", "SpatialConvFistaL1", "conv_lipschitz"]
