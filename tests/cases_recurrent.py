"""Cases for the recurrent modules (see cases.py): gradient checks through time in float64,
the module contract, and PyTorch's nn.RNN / nn.LSTM / nn.GRU as the oracle."""

from __future__ import annotations

import numpy as np
from cases import Case, normal

from ember import nn
from ember.nn.module import Module

N, T, F, H = 3, 4, 2, 3
LENGTHS = [4, 2, 3]
MASK = np.arange(T)[None, :] < np.array(LENGTHS)[:, None]
BASES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


class LeakyCell(Module):
    """A step module of the tests' own: h' = a h + (1 - a) tanh(Linear(x)), a fixed.

    It shows that Recurrent unfolds any module mapping [x_t, h_{t-1}] to h_t, here one
    whose parameters live in a child module."""

    _input_kind = "any"

    def __init__(self, input_size, hidden_size, leak=0.7, rng=None):
        super().__init__()
        self.linear = nn.Linear(input_size, hidden_size, rng=rng)
        self.leak, self.state_size = leak, hidden_size

    def children(self):
        return [self.linear]

    def update_output(self, input):
        x, h = input
        z = self.linear.forward(x)
        self.output = self.leak * h + (1 - self.leak) * np.tanh(z)
        return self.output

    def update_grad_input(self, input, grad_output):
        dz = grad_output * (1 - self.leak) * (1 - np.tanh(self.linear.output) ** 2)
        self.grad_input = [self.linear.update_grad_input(input[0], dz), grad_output * self.leak]
        return self.grad_input

    def acc_grad_parameters(self, input, grad_output, scale=1.0):
        dz = grad_output * (1 - self.leak) * (1 - np.tanh(self.linear.output) ** 2)
        self.linear.acc_grad_parameters(input[0], dz, scale)


def _masked(module, mask=MASK):
    nn.set_mask(module, mask)
    return module


def _torch_pairs(torch, tmod, pairs):
    """Load ember arrays into a torch module's parameters; returns (ember, torch param) pairs."""
    out = []
    for array, name in pairs:
        param = getattr(tmod, name)
        param.data = torch.tensor(np.array(array), dtype=torch.float64)
        out.append((array, param))
    return out


def _torch_fn(torch, tmod, mask, state=False):
    """fn(x[, state]) running tmod batch-first, through packed sequences when masked."""
    utils = torch.nn.utils.rnn

    def fn(x, *rest):
        hx = rest[0] if rest else None
        if isinstance(hx, list):
            hx = tuple(h.unsqueeze(0) if h.ndim == 2 else h for h in hx)
        elif hx is not None and hx.ndim == 2:
            hx = hx.unsqueeze(0)
        if mask is None:
            return tmod(x, hx)[0]
        packed = utils.pack_padded_sequence(x, torch.tensor(mask.sum(1)), batch_first=True, enforce_sorted=False)
        return utils.pad_packed_sequence(tmod(packed, hx)[0], batch_first=True, total_length=mask.shape[1])[0]

    return fn


def _layers_torch(kind, mask=None, **kw):
    def build(m, torch):
        cls = getattr(torch.nn, kind)
        extra = {"nonlinearity": m.nonlinearity} if kind == "RNN" else {}
        tmod = cls(m.input_size, m.hidden_size, num_layers=m.num_layers, bias=m.bias, batch_first=True,
                   bidirectional=m.bidirectional, **extra).double()
        pairs = _torch_pairs(torch, tmod, [(getattr(m, n), n) for n in m._param_names])
        return _torch_fn(torch, tmod, mask), pairs

    return build


def _cells_torch(kind, get_cells, mask=None):
    """Torch oracle for modules built from cells/layers: get_cells(m) -> [(module, suffix)]."""

    def build(m, torch):
        parts = get_cells(m)
        first = parts[0][0]
        cell = getattr(first, "cell", first)
        extra = {"nonlinearity": cell.nonlinearity} if kind == "RNN" else {}
        tmod = getattr(torch.nn, kind)(cell.input_size, cell.hidden_size, batch_first=True,
                                       bidirectional=len(parts) == 2, **extra).double()
        pairs = []
        for module, suffix in parts:
            source = getattr(module, "cell", module)
            for base in BASES:
                name = base if hasattr(source, base) else base + "_l0"
                pairs.append((getattr(source, name), base + suffix))
        return _torch_fn(torch, tmod, mask), _torch_pairs(torch, tmod, pairs)

    return build


def _cell_torch(kind):
    def build(m, torch):
        extra = {"nonlinearity": m.nonlinearity} if kind == "RNNCell" else {}
        tmod = getattr(torch.nn, kind)(m.input_size, m.hidden_size, **extra).double()
        pairs = _torch_pairs(torch, tmod, [(getattr(m, n), n) for n in BASES])
        return (lambda x, h: tmod(x, h)), pairs

    return build


def _table(*shapes, nested=False):
    def sample(rng):
        x = rng.standard_normal(shapes[0])
        states = [rng.standard_normal(s) * 0.5 for s in shapes[1:]]
        return [x, states if nested else states[0]]

    return sample


def _ints(*shape, high=7, low=0):
    return lambda rng: rng.integers(low, high, size=shape)


def _reseed_dropouts(m):
    for d in m._dropouts:
        d.rng = np.random.default_rng(7)


def _lookup_torch(m, torch):
    (w,) = [torch.tensor(np.array(m.weight), requires_grad=True)]
    return (lambda x: torch.nn.functional.embedding(x, w, padding_idx=m.padding_index)), [(m.weight, w)]


def _last_torch(mask):
    def build(m, torch):
        if mask is None:
            return (lambda x: x[:, -1]), []
        last = torch.tensor(mask.sum(1) - 1)
        return (lambda x: x[torch.arange(x.shape[0]), last]), []

    return build


def _log_probs(*shape):
    def sample(rng):
        x = rng.standard_normal(shape)
        return x - np.log(np.exp(x).sum(-1, keepdims=True))

    return sample


def _seq_nll(mask=None):
    def fn(torch, x, t):
        flat_x, flat_t = x.reshape(-1, x.shape[-1]), t.reshape(-1)
        if mask is not None:
            keep = torch.tensor(mask.reshape(-1))
            flat_x, flat_t = flat_x[keep], flat_t[keep]
        return torch.nn.functional.nll_loss(flat_x, flat_t)

    return lambda m, torch: ((lambda x, t: fn(torch, x, t)), [])


def _sequencer_linear_torch(m, torch):
    w, b = (torch.tensor(np.array(a), requires_grad=True) for a in (m.module.weight, m.module.bias))
    return (lambda x: torch.nn.functional.linear(x, w, b)), [(m.module.weight, w), (m.module.bias, b)]


def _bidir(make_module, **kw):
    return lambda rng: nn.Bidirectional(make_module(rng), rng=rng, **kw)


CASES = [
    # cells (one step; input [x, state])
    Case("RNNCell", lambda rng: nn.RNNCell(F, H, rng=rng), _table((N, F), (N, H)), torch=_cell_torch("RNNCell")),
    Case("RNNCell-relu", lambda rng: nn.RNNCell(F, H, nonlinearity="relu", rng=rng), _table((N, F), (N, H)),
         torch=_cell_torch("RNNCell")),
    Case("LSTMCell", lambda rng: nn.LSTMCell(F, H, rng=rng), _table((N, F), (N, H), (N, H), nested=True)),
    Case("GRUCell", lambda rng: nn.GRUCell(F, H, rng=rng), _table((N, F), (N, H)), torch=_cell_torch("GRUCell")),
    Case("GRUCell-no-bias", lambda rng: nn.GRUCell(F, H, bias=False, rng=rng), _table((N, F), (N, H))),
    # the unfolding container, over the cells and over a step module of the tests' own
    Case("Recurrent-LSTMCell", lambda rng: nn.Recurrent(nn.LSTMCell(F, H, rng=rng)), normal(N, T, F),
         torch=_cells_torch("LSTM", lambda m: [(m.cell, "_l0")])),
    Case("Recurrent-GRUCell", lambda rng: nn.Recurrent(nn.GRUCell(F, H, rng=rng)), normal(N, T, F),
         torch=_cells_torch("GRU", lambda m: [(m.cell, "_l0")])),
    Case("Recurrent-RNNCell-state", lambda rng: nn.Recurrent(nn.RNNCell(F, H, rng=rng)), _table((N, T, F), (N, H)),
         torch=_cells_torch("RNN", lambda m: [(m.cell, "_l0")])),
    Case("Recurrent-LSTMCell-state", lambda rng: nn.Recurrent(nn.LSTMCell(F, H, rng=rng)),
         _table((N, T, F), (N, H), (N, H), nested=True)),
    Case("Recurrent-LSTMCell-masked", lambda rng: _masked(nn.Recurrent(nn.LSTMCell(F, H, rng=rng))), normal(N, T, F),
         torch=_cells_torch("LSTM", lambda m: [(m.cell, "_l0")], MASK), roundtrip=False),
    Case("Recurrent-custom-cell", lambda rng: nn.Recurrent(LeakyCell(F, H, rng=rng)), normal(N, T, F)),
    Case("Recurrent-stacked", lambda rng: nn.Sequential(nn.Recurrent(nn.GRUCell(F, H, rng=rng)),
                                                        nn.Recurrent(nn.LSTMCell(H, 2, rng=rng))), normal(N, T, F)),
    # fused layers
    Case("RNN", lambda rng: nn.RNN(F, H, rng=rng), normal(N, T, F), torch=_layers_torch("RNN")),
    Case("RNN-relu-2-layers", lambda rng: nn.RNN(F, H, num_layers=2, nonlinearity="relu", rng=rng), normal(N, T, F),
         torch=_layers_torch("RNN")),
    Case("LSTM", lambda rng: nn.LSTM(F, H, rng=rng), normal(N, T, F), torch=_layers_torch("LSTM")),
    Case("LSTM-2-layers-bidirectional", lambda rng: nn.LSTM(F, H, num_layers=2, bidirectional=True, rng=rng),
         normal(N, T, F), torch=_layers_torch("LSTM")),
    Case("LSTM-masked-bidirectional", lambda rng: _masked(nn.LSTM(F, H, bidirectional=True, rng=rng)), normal(N, T, F),
         torch=_layers_torch("LSTM", MASK), roundtrip=False),
    Case("LSTM-state", lambda rng: nn.LSTM(F, H, num_layers=2, rng=rng),
         _table((N, T, F), (2, N, H), (2, N, H), nested=True)),
    Case("LSTM-dropout", lambda rng: nn.LSTM(F, H, num_layers=2, dropout=0.4, rng=rng), normal(N, T, F),
         reseed=_reseed_dropouts),
    Case("GRU", lambda rng: nn.GRU(F, H, rng=rng), normal(N, T, F), torch=_layers_torch("GRU")),
    Case("GRU-state-bidirectional", lambda rng: nn.GRU(F, H, bidirectional=True, rng=rng), _table((N, T, F), (2, N, H)),
         torch=_layers_torch("GRU")),
    Case("GRU-masked-2-layers", lambda rng: _masked(nn.GRU(F, H, num_layers=2, bias=False, rng=rng)), normal(N, T, F),
         torch=_layers_torch("GRU", MASK), roundtrip=False),
    # wrappers
    Case("Bidirectional-LSTM", _bidir(lambda rng: nn.LSTM(F, H, rng=rng)), normal(N, T, F),
         torch=_cells_torch("LSTM", lambda m: [(m.forward_module, "_l0"), (m.backward_module, "_l0_reverse")])),
    Case("Bidirectional-Recurrent-GRU-masked", lambda rng: _masked(_bidir(lambda r: nn.Recurrent(nn.GRUCell(F, H, rng=r)))(rng)),
         normal(N, T, F), roundtrip=False,
         torch=_cells_torch("GRU", lambda m: [(m.forward_module, "_l0"), (m.backward_module, "_l0_reverse")], MASK)),
    Case("Bidirectional-sum", _bidir(lambda rng: nn.RNN(F, H, rng=rng), merge="sum"), normal(N, T, F)),
    Case("Sequencer", lambda rng: nn.Sequencer(nn.Linear(F, H, rng=rng)), normal(N, T, F), torch=_sequencer_linear_torch),
    Case("Sequencer-LogSoftMax", lambda rng: nn.Sequencer(nn.LogSoftMax()), normal(N, T, 5),
         torch=lambda m, torch: ((lambda x: torch.log_softmax(x, dim=-1)), [])),
    Case("LastStep", lambda rng: nn.LastStep(), normal(N, T, F), torch=_last_torch(None)),
    Case("LastStep-masked", lambda rng: _masked(nn.LastStep()), normal(N, T, F), torch=_last_torch(MASK), roundtrip=False),
    Case("LookupTable", lambda rng: nn.LookupTable(7, 4, rng=rng), _ints(N, T), torch=_lookup_torch),
    Case("LookupTable-padding", lambda rng: nn.LookupTable(7, 4, padding_index=0, rng=rng), _ints(N, T, low=1),
         torch=_lookup_torch),
    # criterion
    Case("SequencerCriterion", lambda rng: nn.SequencerCriterion(nn.ClassNLLCriterion()), _log_probs(N, T, 5),
         target=_ints(N, T, high=5), torch=_seq_nll()),
    Case("SequencerCriterion-masked", lambda rng: _masked(nn.SequencerCriterion(nn.ClassNLLCriterion())),
         _log_probs(N, T, 5), target=_ints(N, T, high=5), torch=_seq_nll(MASK), roundtrip=False),
]  # fmt: skip

