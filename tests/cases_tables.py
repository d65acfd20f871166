"""Cases for table modules, graphs, distances and pair criteria (see cases.py)."""

from __future__ import annotations

import numpy as np
from cases import Case, criterion_case, normal, signs, torch_params

from ember import nn


def _table(*samplers):
    """A sampler of a table (list) whose entries come from ``samplers`` (nested lists allowed)."""

    def sample(rng):
        return [_table(*s)(rng) if isinstance(s, (list, tuple)) else s(rng) for s in samplers]

    return sample


def _fn(torch_fn):
    """A torch spec for a module without parameters: ``fn(torch, *inputs)``."""
    return lambda m, torch: ((lambda *xs: torch_fn(torch, *xs)), [])


def _away_from_zero(*shape):
    return lambda rng: rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 2.0, size=shape)


def _softmax(*shape):
    def sample(rng):
        e = np.exp(rng.standard_normal(shape))
        return e / e.sum(axis=-1, keepdims=True)

    return sample


def _ints(low, high, *shape):
    return lambda rng: rng.integers(low, high, size=shape)




def _linear(torch, m):
    w, b = torch_params(torch, m.weight, m.bias)
    return (lambda x: torch.nn.functional.linear(x, w, b)), [(m.weight, w), (m.bias, b)]


def _children_linear_torch(m, torch, combine):
    """Torch spec for a container of [Linear, Tanh] children (weights from ember)."""
    lin, pairs = _linear(torch, m.get(0))
    return (lambda *xs: combine(torch, lin, xs)), pairs


def _siamese(rng):
    branch = nn.Sequential(nn.Linear(4, 3, rng=rng), nn.Tanh())
    return nn.ParallelTable(branch, branch.clone("weight", "bias"))


def _siamese_torch(m, torch):
    lin, pairs = _linear(torch, m.get(0).get(0))
    return (lambda a, b: [torch.tanh(lin(a)), torch.tanh(lin(b))]), pairs


def _map_torch(m, torch):
    lin, pairs = _linear(torch, m.get(0))
    return (lambda *xs: [lin(x) for x in xs]), pairs


def _mixture(torch, g, experts):
    if isinstance(experts, (list, tuple)):
        return sum(g[..., k : k + 1] * e for k, e in enumerate(experts))
    return (g.unsqueeze(-1) * experts).sum(dim=-2)


def _graph():
    """x -> Linear -> ReLU = h; h fans out to a Linear used twice (shared weights) and
    to a CAddTable merge; two heads; a per-sample Switch picks one; LogSoftMax."""
    rng = np.random.default_rng(0)
    x, s = nn.Input("x"), nn.Input("s")
    h = nn.Tanh()(nn.Linear(4, 5, rng=rng)(x)).annotate("h")
    shared = nn.Linear(5, 5, rng=rng)
    a = nn.Tanh()(shared(nn.Tanh()(shared(h))))
    r = nn.CAddTable()(h, a)
    heads = [nn.Linear(5, 3, rng=rng)(r), nn.Linear(5, 3, rng=rng)(r)]
    return nn.Graph([x, s], nn.LogSoftMax()(nn.Switch()(s, *heads)))


def _graph_torch(m, torch):
    (lin0, p0), (shared, p1), (head0, p2), (head1, p3) = (_linear(torch, c) for c in m.children() if isinstance(c, nn.Linear))

    def fn(x, s):
        h = torch.tanh(lin0(x))
        r = h + torch.tanh(shared(torch.tanh(shared(h))))
        y = torch.stack([head0(r), head1(r)])[s, torch.arange(len(s))]
        return torch.log_softmax(y, dim=-1)

    return fn, p0 + p1 + p2 + p3


def _prototype_torch(squared):
    def spec(m, torch):
        (w,) = torch_params(torch, m.weight)

        def fn(x):
            d2 = ((x.unsqueeze(-1) - w) ** 2).sum(dim=-2)
            return d2 if squared else d2.sqrt()

        return fn, [(m.weight, w)]

    return spec


def _cosine_torch(m, torch):
    (w,) = torch_params(torch, m.weight)
    def fn(x):
        return (x @ w.T) / (x.norm(dim=-1, keepdim=True) + 1e-12) / (w.norm(dim=-1) + 1e-12)

    return fn, [(m.weight, w)]




def _contrastive_torch(torch, x, y, margin):
    d = (x[0] - x[1]).norm(dim=-1)
    return ((1 - y) * 0.5 * d**2 + y * 0.5 * torch.clamp(margin - d, min=0) ** 2).mean()


def _l1_hinge_torch(torch, x, y, margin):
    d = (x[0] - x[1]).abs().sum(dim=-1)
    return torch.where(y > 0, d, torch.clamp(margin - d, min=0)).mean()


N34 = normal(3, 4)

CASES = [
    # elementwise table operations
    Case("CAddTable", lambda rng: nn.CAddTable(), _table(N34, N34, N34), torch=_fn(lambda torch, a, b, c: a + b + c)),
    Case("CSubTable", lambda rng: nn.CSubTable(), _table(N34, N34), torch=_fn(lambda torch, a, b: a - b)),
    Case("CMulTable", lambda rng: nn.CMulTable(), _table(N34, N34, N34), torch=_fn(lambda torch, a, b, c: a * b * c)),
    Case("CDivTable", lambda rng: nn.CDivTable(), _table(N34, _away_from_zero(3, 4)), torch=_fn(lambda torch, a, b: a / b)),
    Case("CMaxTable", lambda rng: nn.CMaxTable(), _table(N34, N34, N34),
         torch=_fn(lambda torch, a, b, c: torch.maximum(torch.maximum(a, b), c))),
    Case("CMinTable", lambda rng: nn.CMinTable(), _table(N34, N34),
         torch=_fn(lambda torch, a, b: torch.minimum(a, b))),
    Case("Switch", lambda rng: nn.Switch(), _table(_ints(0, 3, 5), normal(5, 2), normal(5, 2), normal(5, 2)),
         torch=_fn(lambda torch, s, *xs: torch.stack(xs)[s, torch.arange(len(s))])),
    Case("Switch-one-selector", lambda rng: nn.Switch(2), lambda rng: [1, rng.standard_normal((3, 2)), rng.standard_normal((3, 2))],
         torch=_fn(lambda torch, s, *xs: xs[s] * 1)),
    Case("MixtureTable", lambda rng: nn.MixtureTable(), _table(_softmax(4, 3), [normal(4, 2), normal(4, 2), normal(4, 2)]),
         torch=_fn(_mixture)),
    Case("MixtureTable-stacked", lambda rng: nn.MixtureTable(), _table(_softmax(4, 3), normal(4, 3, 2, 2)),
         torch=_fn(lambda torch, g, e: (g[:, :, None, None] * e).sum(dim=1))),
    Case("MixtureTable-single", lambda rng: nn.MixtureTable(), _table(_softmax(3), [normal(2), normal(2), normal(2)]),
         torch=_fn(_mixture)),
    # layout
    Case("JoinTable", lambda rng: nn.JoinTable(-1), _table(normal(3, 2), normal(3, 4)),
         torch=_fn(lambda torch, a, b: torch.cat([a, b], dim=-1))),
    Case("JoinTable-batch-axis", lambda rng: nn.JoinTable(0), _table(normal(1, 2, 3), normal(2, 2, 3)),
         torch=_fn(lambda torch, a, b: torch.cat([a, b], dim=0))),
    Case("SplitTable", lambda rng: nn.SplitTable(1), normal(3, 4, 2), torch=lambda m, torch: ((lambda x: list(torch.unbind(x, 1))), [])),
    Case("SelectTable", lambda rng: nn.SelectTable(1), _table(normal(3, 2), normal(3, 4), normal(2)),
         torch=_fn(lambda torch, a, b, c: b * 1)),
    Case("SelectTable-nested", lambda rng: nn.SelectTable(-1), _table(normal(2), [normal(3), normal(2, 2)]),
         torch=_fn(lambda torch, a, bc: [v * 1 for v in bc])),
    Case("NarrowTable", lambda rng: nn.NarrowTable(1, 2), _table(normal(2), normal(3), normal(2, 2), normal(1)),
         torch=_fn(lambda torch, a, b, c, d: [b * 1, c * 1])),
    Case("FlattenTable", lambda rng: nn.FlattenTable(), _table(normal(2), [normal(3), [normal(2, 2)]], normal(1)),
         torch=_fn(lambda torch, a, bc, d: [a * 1, bc[0] * 1, bc[1][0] * 1, d * 1])),
    Case("Replicate", lambda rng: nn.Replicate(3, 1), normal(2, 4),
         torch=lambda m, torch: ((lambda x: x.unsqueeze(1).expand(2, 3, 4) * 1), [])),
    # containers
    Case("ConcatTable", lambda rng: nn.ConcatTable(nn.Linear(4, 3, rng=rng), nn.Tanh()), normal(2, 4),
         torch=lambda m, torch: _children_linear_torch(m, torch, lambda torch, lin, xs: [lin(xs[0]), torch.tanh(xs[0])])),
    Case("ConcatTable-table-input", lambda rng: nn.ConcatTable(nn.SelectTable(0), nn.CAddTable()), _table(N34, N34),
         torch=_fn(lambda torch, a, b: [a * 1, a + b])),
    Case("ParallelTable", lambda rng: nn.ParallelTable(nn.Linear(4, 3, rng=rng), nn.Tanh()), _table(normal(2, 4), normal(2, 5)),
         torch=lambda m, torch: _children_linear_torch(m, torch, lambda torch, lin, xs: [lin(xs[0]), torch.tanh(xs[1])])),
    Case("ParallelTable-siamese", _siamese, _table(normal(2, 4), normal(2, 4)), torch=_siamese_torch),
    Case("MapTable", lambda rng: nn.MapTable(nn.Linear(4, 3, rng=rng)), _table(normal(2, 4), normal(2, 4), normal(4)),
         torch=_map_torch),
    Case("Concat", lambda rng: nn.Concat(1, nn.Linear(4, 3, rng=rng), nn.Tanh()), normal(2, 4),
         torch=lambda m, torch: _children_linear_torch(m, torch, lambda torch, lin, xs: torch.cat([lin(xs[0]), torch.tanh(xs[0])], 1))),
    Case("Parallel", lambda rng: nn.Parallel(1, 1, nn.Linear(4, 3, rng=rng), nn.Tanh()), normal(2, 2, 4),
         torch=lambda m, torch: _children_linear_torch(
             m, torch, lambda torch, lin, xs: torch.cat([lin(xs[0][:, 0]), torch.tanh(xs[0][:, 1])], 1))),
    Case("Graph", lambda rng: _graph(), _table(normal(5, 4), lambda rng: np.array([0, 1, 1, 0, 1])), torch=_graph_torch),
    # distances
    Case("PairwiseDistance", lambda rng: nn.PairwiseDistance(2), _table(normal(4, 5), normal(4, 5)),
         torch=_fn(lambda torch, a, b: torch.nn.functional.pairwise_distance(a, b, p=2, eps=0))),
    Case("PairwiseDistance-p1", lambda rng: nn.PairwiseDistance(1), _table(normal(4, 5), normal(4, 5)),
         torch=_fn(lambda torch, a, b: (a - b).abs().sum(-1))),
    Case("PairwiseDistance-p3-single", lambda rng: nn.PairwiseDistance(3), _table(normal(5), normal(5)),
         torch=_fn(lambda torch, a, b: ((a - b).abs() ** 3).sum() ** (1 / 3))),
    Case("DotProduct", lambda rng: nn.DotProduct(), _table(normal(4, 5), normal(4, 5)), torch=_fn(lambda torch, a, b: (a * b).sum(-1))),
    Case("CosineDistance", lambda rng: nn.CosineDistance(), _table(normal(4, 5), normal(4, 5)),
         torch=_fn(lambda torch, a, b: torch.nn.functional.cosine_similarity(a, b, dim=-1))),
    Case("CosineDistance-single", lambda rng: nn.CosineDistance(), _table(normal(5), normal(5)),
         torch=_fn(lambda torch, a, b: torch.nn.functional.cosine_similarity(a, b, dim=0))),
    Case("Cosine", lambda rng: nn.Cosine(5, 3, rng=rng), normal(4, 5), torch=_cosine_torch),
    Case("Euclidean", lambda rng: nn.Euclidean(5, 3, rng=rng), normal(4, 5), torch=_prototype_torch(False)),
    Case("SquaredEuclidean", lambda rng: nn.SquaredEuclidean(5, 3, rng=rng), normal(4, 5), torch=_prototype_torch(True)),
    Case("SquaredEuclidean-single", lambda rng: nn.SquaredEuclidean(5, 3, rng=rng), normal(5), torch=_prototype_torch(True)),
    # criteria on pairs
    criterion_case("HingeEmbeddingCriterion", lambda: nn.HingeEmbeddingCriterion(1.0),
          lambda rng: rng.choice([0.3, 1.6], size=(3, 4)) + rng.uniform(-0.2, 0.2, size=(3, 4)), signs(3, 4),
          lambda torch, x, t: torch.nn.functional.hinge_embedding_loss(x, t, margin=1.0)),
    criterion_case("L1HingeEmbeddingCriterion", lambda: nn.L1HingeEmbeddingCriterion(6.0), _table(normal(6, 5), normal(6, 5)), signs(6),
          lambda torch, x, t: _l1_hinge_torch(torch, x, t, 6.0)),
    criterion_case("CosineEmbeddingCriterion", lambda: nn.CosineEmbeddingCriterion(0.1), _table(normal(6, 5), normal(6, 5)), signs(6),
          lambda torch, x, t: torch.nn.functional.cosine_embedding_loss(x[0], x[1], t, margin=0.1)),
    criterion_case("MarginRankingCriterion", lambda: nn.MarginRankingCriterion(0.5), _table(normal(6), normal(6)), signs(6),
          lambda torch, x, t: torch.nn.functional.margin_ranking_loss(x[0], x[1], t, margin=0.5)),
    criterion_case("ContrastiveCriterion", lambda: nn.ContrastiveCriterion(2.0), _table(normal(8, 3), normal(8, 3)), _ints(0, 2, 8),
          lambda torch, x, t: _contrastive_torch(torch, x, t, 2.0)),
    criterion_case("ContrastiveCriterion-sum-single", lambda: nn.ContrastiveCriterion(5.0, size_average=False), _table(normal(3), normal(3)),
          lambda rng: 1, lambda torch, x, t: _contrastive_torch(torch, x, t, 5.0) * 1),
    Case("ParallelCriterion", lambda rng: nn.ParallelCriterion().add(nn.MSECriterion(), 0.5).add(nn.ClassNLLCriterion(), 2.0),
         _table(N34, normal(3, 5)), target=_table(N34, _ints(0, 5, 3)),
         torch=lambda m, torch: ((lambda x, t: 0.5 * torch.nn.functional.mse_loss(x[0], t[0]) + 2 * torch.nn.functional.nll_loss(x[1], t[1])), [])),
    Case("ParallelCriterion-repeat", lambda rng: nn.ParallelCriterion(True).add(nn.MSECriterion()).add(nn.AbsCriterion(), 0.3),
         _table(N34, N34), target=N34,
         torch=lambda m, torch: ((lambda x, t: torch.nn.functional.mse_loss(x[0], t) + 0.3 * torch.nn.functional.l1_loss(x[1], t)), [])),
    Case("MultiCriterion", lambda rng: nn.MultiCriterion().add(nn.MSECriterion(), 0.5).add(nn.AbsCriterion(), 2.0), N34, target=N34,
         torch=lambda m, torch: ((lambda x, t: 0.5 * torch.nn.functional.mse_loss(x, t) + 2 * torch.nn.functional.l1_loss(x, t)), [])),
    Case("MultiCriterion-table", lambda rng: nn.MultiCriterion().add(nn.ContrastiveCriterion(2.0)).add(nn.ContrastiveCriterion(4.0), 0.5),
         _table(normal(6, 5), normal(6, 5)), target=lambda rng: np.array([0, 1, 1, 0, 1, 0]),
         torch=lambda m, torch: ((lambda x, t: _contrastive_torch(torch, x, t, 2.0) + 0.5 * _contrastive_torch(torch, x, t, 4.0)), [])),
]  # fmt: skip
