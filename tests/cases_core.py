"""Cases for the core modules and criteria (see cases.py)."""

from __future__ import annotations

import numpy as np
from cases import Case, criterion_case, normal, reseed, signs, torch_params, uniform

from ember import nn


def _elementwise(name, make, sampler, torch_fn, **kw):
    return Case(name, lambda rng: make(), sampler, torch=lambda m, torch: (lambda x: torch_fn(torch, x), []), **kw)


def _linear_torch(m, torch):
    w, b = torch_params(torch, m.weight, m.bias)
    return (lambda x: torch.nn.functional.linear(x, w, b)), [(m.weight, w), (m.bias, b)]


def _seq_torch(m, torch, activation="tanh"):
    l1, l2 = m.get(0), m.get(2)
    w1, b1, w2, b2 = torch_params(torch, l1.weight, l1.bias, l2.weight, l2.bias)
    F, f = torch.nn.functional, getattr(torch, activation)
    fn = lambda x: F.log_softmax(F.linear(f(F.linear(x, w1, b1)), w2, b2), dim=-1)  # noqa: E731
    return fn, [(l1.weight, w1), (l1.bias, b1), (l2.weight, w2), (l2.bias, b2)]




def _labels(n, c):
    return lambda rng: rng.integers(0, c, size=n)






def _probs(*shape):
    def sample(rng):
        p = rng.uniform(0.1, 1.0, size=shape)
        return p / p.sum(axis=-1, keepdims=True)

    return sample


CASES = [
    # containers and layout
    Case("Sequential", lambda rng: nn.Sequential(nn.Linear(5, 4, rng=rng), nn.Tanh(), nn.Linear(4, 3, rng=rng), nn.LogSoftMax()),
         normal(3, 5), torch=_seq_torch),
    # the ReLU writes over the first Linear's output (see ReLU's inplace)
    Case("Sequential-inplace-ReLU",
         lambda rng: nn.Sequential(nn.Linear(5, 4, rng=rng), nn.ReLU(inplace=True), nn.Linear(4, 3, rng=rng), nn.LogSoftMax()),
         normal(3, 5), torch=lambda m, torch: _seq_torch(m, torch, "relu")),
    Case("Identity", lambda rng: nn.Identity(), normal(3, 4), torch=lambda m, torch: ((lambda x: x * 1), [])),
    Case("Linear", lambda rng: nn.Linear(5, 4, rng=rng), normal(3, 5), torch=_linear_torch),
    Case("Linear-single-sample", lambda rng: nn.Linear(5, 4, rng=rng), normal(5), torch=_linear_torch),
    Case("Linear-no-bias", lambda rng: nn.Linear(5, 4, bias=False, rng=rng), normal(1, 5),
         torch=lambda m, torch: (lambda w: ((lambda x: x @ w.T), [(m.weight, w)]))(torch_params(torch, m.weight)[0])),
    Case("Reshape", lambda rng: nn.Reshape(6), normal(2, 2, 3), torch=lambda m, torch: ((lambda x: x.reshape(2, 6)), [])),
    Case("View", lambda rng: nn.View(3, 2), normal(6), torch=lambda m, torch: ((lambda x: x.reshape(3, 2)), [])),
    Case("Dropout", lambda rng: nn.Dropout(0.4, rng=1), normal(4, 6), reseed=reseed, roundtrip=False),
    Case("Dropout-v1", lambda rng: nn.Dropout(0.3, v1=True, rng=1), normal(4, 6), reseed=reseed, roundtrip=False),
    Case("Add", lambda rng: nn.Add(4, rng=rng), normal(3, 4),
         torch=lambda m, torch: (lambda b: ((lambda x: x + b), [(m.bias, b)]))(torch_params(torch, m.bias)[0])),
    Case("Add-scalar", lambda rng: nn.Add(4, scalar=True, rng=rng), normal(3, 4)),
    Case("Mul", lambda rng: nn.Mul(rng=rng), normal(3, 4),
         torch=lambda m, torch: (lambda w: ((lambda x: x * w), [(m.weight, w)]))(torch_params(torch, m.weight)[0])),
    Case("CMul", lambda rng: nn.CMul(1, 4, rng=rng), normal(3, 2, 4),
         torch=lambda m, torch: (lambda w: ((lambda x: x * w), [(m.weight, w)]))(torch_params(torch, m.weight)[0])),
    # transfer functions
    _elementwise("Threshold", lambda: nn.Threshold(0.2, -0.5), normal(3, 5, away=(0.2, 0.05)),
                 lambda torch, x: torch.nn.functional.threshold(x, 0.2, -0.5)),
    _elementwise("ReLU", lambda: nn.ReLU(), normal(3, 5, away=(0, 0.05)), lambda torch, x: torch.relu(x)),
    _elementwise("Tanh", lambda: nn.Tanh(), normal(3, 5), lambda torch, x: torch.tanh(x)),
    _elementwise("Sigmoid", lambda: nn.Sigmoid(), normal(3, 5), lambda torch, x: torch.sigmoid(x)),
    _elementwise("HardTanh", lambda: nn.HardTanh(), normal(3, 5, away=(1, 0.05)),
                 lambda torch, x: torch.nn.functional.hardtanh(x)),
    _elementwise("SoftPlus", lambda: nn.SoftPlus(beta=2), normal(3, 5),
                 lambda torch, x: torch.nn.functional.softplus(x, beta=2)),
    _elementwise("SoftShrink", lambda: nn.SoftShrink(0.5), normal(3, 5, away=(0.5, 0.05)),
                 lambda torch, x: torch.nn.functional.softshrink(x, 0.5)),
    _elementwise("HardShrink", lambda: nn.HardShrink(0.5), normal(3, 5, away=(0.5, 0.05)),
                 lambda torch, x: torch.nn.functional.hardshrink(x, 0.5)),
    _elementwise("Abs", lambda: nn.Abs(), normal(3, 5, away=(0, 0.05)), lambda torch, x: torch.abs(x)),
    _elementwise("SoftMax", lambda: nn.SoftMax(), normal(3, 5), lambda torch, x: torch.softmax(x, dim=1)),
    _elementwise("LogSoftMax", lambda: nn.LogSoftMax(), normal(3, 5), lambda torch, x: torch.log_softmax(x, dim=1)),
    _elementwise("LogSoftMax-single", lambda: nn.LogSoftMax(), normal(5), lambda torch, x: torch.log_softmax(x, dim=0)),
    _elementwise("LogSumExp", lambda: nn.LogSumExp(), normal(3, 5), lambda torch, x: torch.logsumexp(x, dim=1)),
    # elementwise math
    _elementwise("Square", lambda: nn.Square(), normal(3, 4), lambda torch, x: x * x),
    _elementwise("Sqrt", lambda: nn.Sqrt(), uniform(3, 4, low=0.5, high=2), lambda torch, x: torch.sqrt(x)),
    _elementwise("Power", lambda: nn.Power(3), normal(3, 4), lambda torch, x: x**3),
    _elementwise("Exp", lambda: nn.Exp(), normal(3, 4), lambda torch, x: torch.exp(x)),
    _elementwise("Log", lambda: nn.Log(), uniform(3, 4, low=0.5, high=2), lambda torch, x: torch.log(x)),
    _elementwise("AddConstant", lambda: nn.AddConstant(1.5), normal(3, 4), lambda torch, x: x + 1.5),
    _elementwise("MulConstant", lambda: nn.MulConstant(-2.0), normal(3, 4), lambda torch, x: x * -2.0),
    # reductions
    _elementwise("Sum", lambda: nn.Sum(1), normal(3, 4, 2), lambda torch, x: x.sum(dim=1)),
    _elementwise("Mean", lambda: nn.Mean(-1), normal(3, 4), lambda torch, x: x.mean(dim=-1)),
    _elementwise("Max", lambda: nn.Max(1), normal(3, 4, 2), lambda torch, x: x.max(dim=1).values),
    _elementwise("Min", lambda: nn.Min(-1), normal(3, 4), lambda torch, x: x.min(dim=-1).values),
    # criteria
    criterion_case("ClassNLLCriterion", lambda: nn.ClassNLLCriterion(), normal(4, 5), _labels(4, 5),
          lambda torch, x, t: torch.nn.functional.nll_loss(x, t)),
    criterion_case("ClassNLLCriterion-weights-ignore", lambda: nn.ClassNLLCriterion(weights=[1, 2, 0.5, 1, 3], ignore_index=1),
          normal(6, 5), lambda rng: np.array([0, 1, 2, 3, 4, 2]),
          lambda torch, x, t: torch.nn.functional.nll_loss(x, t, weight=torch.tensor([1, 2, 0.5, 1, 3], dtype=torch.float64), ignore_index=1)),
    criterion_case("ClassNLLCriterion-ignore-in-range", lambda: nn.ClassNLLCriterion(ignore_index=2), normal(5, 4),
          lambda rng: np.array([0, 2, 1, 3, 2]),
          lambda torch, x, t: torch.nn.functional.nll_loss(x, t, ignore_index=2)),
    criterion_case("ClassNLLCriterion-sum", lambda: nn.ClassNLLCriterion(size_average=False), normal(4, 5), _labels(4, 5),
          lambda torch, x, t: torch.nn.functional.nll_loss(x, t, reduction="sum")),
    criterion_case("CrossEntropyCriterion", lambda: nn.CrossEntropyCriterion(), normal(4, 5), _labels(4, 5),
          lambda torch, x, t: torch.nn.functional.cross_entropy(x, t)),
    criterion_case("MSECriterion", lambda: nn.MSECriterion(), normal(3, 4), normal(3, 4),
          lambda torch, x, t: torch.nn.functional.mse_loss(x, t)),
    criterion_case("AbsCriterion", lambda: nn.AbsCriterion(), normal(3, 4), normal(3, 4),
          lambda torch, x, t: torch.nn.functional.l1_loss(x, t)),
    criterion_case("SmoothL1Criterion", lambda: nn.SmoothL1Criterion(), normal(3, 4), normal(3, 4),
          lambda torch, x, t: torch.nn.functional.smooth_l1_loss(x, t)),
    criterion_case("BCECriterion", lambda: nn.BCECriterion(), uniform(3, 4, low=0.05, high=0.95), uniform(3, 4),
          lambda torch, x, t: torch.nn.functional.binary_cross_entropy(x, t)),
    criterion_case("MarginCriterion", lambda: nn.MarginCriterion(1.0), lambda rng: rng.choice([-1.0, 1.0], size=(3, 4)) * rng.uniform(0.1, 0.8, size=(3, 4)) * 2, signs(3, 4),
          lambda torch, x, t: torch.clamp(1.0 - t * x, min=0).mean()),
    criterion_case("MultiMarginCriterion", lambda: nn.MultiMarginCriterion(), normal(4, 5), _labels(4, 5),
          lambda torch, x, t: torch.nn.functional.multi_margin_loss(x, t)),
    criterion_case("MultiMarginCriterion-p2", lambda: nn.MultiMarginCriterion(p=2, margin=0.5), normal(4, 5), _labels(4, 5),
          lambda torch, x, t: torch.nn.functional.multi_margin_loss(x, t, p=2, margin=0.5)),
    criterion_case("DistKLDivCriterion", lambda: nn.DistKLDivCriterion(), lambda rng: np.log(_probs(3, 4)(rng)), _probs(3, 4),
          lambda torch, x, t: torch.nn.functional.kl_div(x, t, reduction="mean")),
]  # fmt: skip
