"""Recurrent modules beyond the per-case checks: clear errors, masks and padding,
truncated BPTT, remember/forget, shared clones and the flat parameter vector."""

import numpy as np
import pytest

from ember import ShapeError, nn

F64 = "numpy:float64"


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _lstm(*args, **kw):
    return nn.LSTM(*args, rng=np.random.default_rng(0), **kw).to(F64)


# ---------------------------------------------------------------- clear errors
@pytest.mark.parametrize("make", [lambda: _lstm(3, 4), lambda: nn.Recurrent(nn.GRUCell(3, 4, rng=0)).to(F64),
                                  lambda: nn.Sequencer(nn.Linear(3, 4)).to(F64), lambda: nn.LastStep().to(F64)])
def test_sequences_of_mismatched_lengths_without_a_mask_are_refused(make):
    module = make()
    with pytest.raises(ShapeError, match=r"mismatched lengths \[5, 7\].*pad_sequences.*set_mask"):
        module.forward([_x(5, 3), _x(7, 3)])


def test_mismatched_target_length_is_refused():
    crit = nn.SequencerCriterion(nn.ClassNLLCriterion()).to(F64)
    with pytest.raises(ShapeError, match=r"\(N, T\) = \(2, 5\).*\(2, 4\).*mismatched lengths"):
        crit.forward(_x(2, 5, 3), np.zeros((2, 4), dtype=np.int64))


def test_mask_of_the_wrong_shape_is_refused():
    lstm = _lstm(3, 4)
    nn.set_mask(lstm, np.ones((2, 4), dtype=bool))
    with pytest.raises(ShapeError, match=r"mask has shape \(2, 4\) but the input has \(N, T\) = \(2, 5\)"):
        lstm.forward(_x(2, 5, 3))


@pytest.mark.parametrize("state, pattern", [
    ([np.zeros((1, 2, 5)), np.zeros((1, 2, 4))], r"initial state \[h0, c0\].*\(1, 2, 4\).*got \[\(1, 2, 5\)"),
    (np.zeros((1, 2, 4)), r"initial state \[h0, c0\]"),
    ([np.zeros((2, 4)), np.zeros((2, 4))], r"\(L\*D, N, H\) = \(1, N, 4\)"),
])  # fmt: skip
def test_initial_state_of_the_wrong_shape_is_refused(state, pattern):
    with pytest.raises(ShapeError, match=pattern) as info:
        _lstm(3, 4).forward([_x(2, 5, 3), state])
    assert "LSTM(3 -> 4)" in str(info.value)


def test_cell_and_container_name_the_expected_state():
    cell = nn.LSTMCell(3, 4, rng=0).to(F64)
    with pytest.raises(ShapeError, match=r"LSTMCell\(3 -> 4\): expected the hidden state \[h, c\], each \(N, 4\) with N = 2"):
        cell.forward([_x(2, 3), [_x(2, 4), _x(3, 4)]])
    rec = nn.Recurrent(nn.GRUCell(3, 4, rng=0)).to(F64)
    with pytest.raises(ShapeError, match=r"Recurrent\(GRUCell\(3 -> 4\)\): expected the initial state \(N, H\) = \(2, 4\), got \(2, 5\)"):
        rec.forward([_x(2, 6, 3), _x(2, 5)])
    with pytest.raises(ShapeError, match=r"GRU\(3 -> 4\): expected input \(N, T, 3\), got \(2, 6, 2\)"):
        nn.GRU(3, 4).to(F64).forward(_x(2, 6, 2))


def test_remembered_state_with_another_batch_size_is_refused():
    lstm = _lstm(3, 4).remember()
    lstm.forward(_x(2, 5, 3))
    with pytest.raises(ShapeError, match="remembered state.*forget"):
        lstm.forward(_x(3, 5, 3))
    lstm.forget().forward(_x(3, 5, 3))


def test_lookup_table_checks_its_indices():
    table = nn.LookupTable(5, 2)
    with pytest.raises(ShapeError, match=r"integer indices"):
        table.forward(np.zeros((2, 3)))
    with pytest.raises(ShapeError, match=r"\[0, 4\] \(0-based\), got 5"):
        table.forward(np.array([[1, 5]]))
    with pytest.raises(ValueError, match="padding_index"):
        nn.LookupTable(5, 2, padding_index=5)


@pytest.mark.parametrize("make, pattern", [
    (lambda: nn.LSTM(0, 3), "input_size"), (lambda: nn.GRU(3, 4, dropout=1.0), "dropout"),
    (lambda: nn.RNN(3, 4, nonlinearity="sigmoid"), "nonlinearity"), (lambda: nn.Recurrent(nn.Linear(2, 2)), "state_size"),
    (lambda: nn.Recurrent(nn.RNNCell(2, 2), rho=0), "rho"), (lambda: nn.Bidirectional(nn.LSTM(2, 2), merge="max"), "merge"),
])  # fmt: skip
def test_bad_constructor_arguments(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


# ---------------------------------------------------------------- masks and padding
def _alone_and_padded(make, lengths, seed=0):
    """Run each sequence alone and all of them padded with a mask; return both results."""
    rng = np.random.default_rng(seed)
    seqs = [rng.standard_normal((n, 3)) for n in lengths]
    padded, mask = nn.pad_sequences(seqs, value=9.0)
    model = make()
    nn.set_mask(model, mask)
    out = model.forward(padded).copy()
    probe = rng.standard_normal(out.shape)
    model.zero_grad_parameters()
    gx = model.backward(padded, probe).copy()
    grads = [g.copy() for g in model.parameters()[1]]
    nn.set_mask(model, None)
    alone_grads = [np.zeros_like(g) for g in grads]
    for i, s in enumerate(seqs):
        model.zero_grad_parameters()
        y = model.forward(s[None])
        np.testing.assert_allclose(out[i, : len(s)], y[0], atol=1e-12)
        np.testing.assert_allclose(gx[i, : len(s)], model.backward(s[None], probe[i : i + 1, : len(s)])[0], atol=1e-12)
        for total, g in zip(alone_grads, model.parameters()[1]):
            total += g
    for a, b in zip(grads, alone_grads):
        np.testing.assert_allclose(a, b, atol=1e-12)
    return out, gx, mask


@pytest.mark.parametrize("make", [
    lambda: _lstm(3, 4, num_layers=2, bidirectional=True),
    lambda: nn.GRU(3, 4, rng=0).to(F64),
    lambda: nn.RNN(3, 4, nonlinearity="relu", rng=0).to(F64),
    lambda: nn.Recurrent(nn.LSTMCell(3, 4, rng=0)).to(F64),
    lambda: nn.Bidirectional(nn.Recurrent(nn.GRUCell(3, 4, rng=0)), rng=1).to(F64),
], ids=["LSTM-2-bidirectional", "GRU", "RNN-relu", "Recurrent-LSTMCell", "Bidirectional-Recurrent"])  # fmt: skip
def test_a_masked_batch_equals_each_sequence_alone(make):
    out, gx, mask = _alone_and_padded(make, [5, 2, 4, 1])
    assert np.all(out[~mask] == 0) and np.all(gx[~mask] == 0)


def test_masked_final_state_is_the_state_at_the_last_real_step():
    lstm = _lstm(3, 4)
    x = _x(2, 6, 3)
    nn.set_mask(lstm, nn.pad_sequences([np.zeros(6), np.zeros(3)])[1])
    lstm.forward(x)
    h_masked = lstm.final_state[0].copy()
    nn.set_mask(lstm, None)
    lstm.forward(x[1:, :3])
    np.testing.assert_allclose(h_masked[0, 1], lstm.final_state[0][0, 0], atol=1e-12)


def test_last_step_and_criterion_follow_the_mask():
    x = _x(3, 4, 5)
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=bool)
    last = nn.LastStep().to(F64)
    nn.set_mask(last, mask)
    np.testing.assert_array_equal(last.forward(x), x[[0, 1, 2], [3, 1, 0]])
    crit = nn.SequencerCriterion(nn.ClassNLLCriterion()).to(F64)
    target = np.zeros((3, 4), dtype=np.int64)
    nn.set_mask(crit, mask)
    assert crit.forward(x, target) == pytest.approx(-x[mask][:, 0].mean())
    assert np.all(crit.backward(x, target)[~mask] == 0)


# ---------------------------------------------------------------- truncated BPTT and carried state
def test_rho_back_propagates_through_the_last_rho_steps_only():
    x, rho = _x(2, 7, 3), 3
    rec = nn.Recurrent(nn.LSTMCell(3, 4, rng=0), rho=rho).to(F64)
    out = rec.forward(x).copy()
    probe = _x(*out.shape, seed=1)
    rec.zero_grad_parameters()
    gx = rec.backward(x, probe).copy()
    grads = [g.copy() for g in rec.parameters()[1]]
    assert len(rec.clones) == rho + 1
    # the same as a full BPTT over the last rho steps, started from the (constant) state before them
    full = nn.Recurrent(rec.cell.clone()).to(F64)
    full.forward(x[:, : 7 - rho])
    start = [s.copy() for s in full.final_state]
    tail = [x[:, 7 - rho :], start]
    np.testing.assert_allclose(full.forward(tail), out[:, 7 - rho :], atol=1e-12)
    full.zero_grad_parameters()
    g_tail = full.backward(tail, probe[:, 7 - rho :])
    np.testing.assert_allclose(gx[:, 7 - rho :], g_tail[0], atol=1e-12)
    assert np.all(gx[:, : 7 - rho] == 0)
    for a, b in zip(grads, full.parameters()[1]):
        np.testing.assert_allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("make", [lambda: _lstm(3, 4, num_layers=2), lambda: nn.Recurrent(nn.GRUCell(3, 4, rng=0)).to(F64)],
                         ids=["LSTM", "Recurrent-GRUCell"])
def test_remember_carries_the_state_across_calls(make):
    x = _x(2, 8, 3)
    whole = make()
    y = whole.forward(x).copy()
    chunks = make().remember()
    parts = [chunks.forward(x[:, i : i + 3]).copy() for i in (0, 3, 6)[:2]] + [chunks.forward(x[:, 6:]).copy()]
    np.testing.assert_allclose(np.concatenate(parts, axis=1), y, atol=1e-12)
    chunks.backward(x[:, 6:], np.ones_like(parts[-1]))  # the carried input state is still intact
    chunks.forget()
    np.testing.assert_allclose(chunks.forward(x[:, :3]), y[:, :3], atol=1e-12)
    chunks.remember("train").evaluate()
    a = chunks.forward(x[:, :3]).copy()
    np.testing.assert_allclose(chunks.forward(x[:, :3]), a, atol=1e-12)  # evaluation: not carried


def test_clones_follow_get_parameters():
    rec = nn.Recurrent(nn.RNNCell(3, 4, rng=0)).to(F64)
    x = _x(2, 5, 3)
    rec.forward(x)  # clones exist before flattening
    params, grads = rec.get_parameters()
    grads.fill(0)
    rec.forward(x)
    rec.backward(x, np.ones((2, 5, 4)))
    assert np.abs(grads).sum() > 0
    expected = nn.Recurrent(rec.cell.clone()).to(F64)
    expected.zero_grad_parameters()
    expected.forward(x)
    expected.backward(x, np.ones((2, 5, 4)))
    np.testing.assert_allclose(grads, np.concatenate([g.ravel() for g in expected.parameters()[1]]), atol=1e-12)
    params -= 0.1  # an update of the flat vector reaches every clone
    np.testing.assert_allclose(rec.clones[3].weight_hh, rec.cell.weight_hh)


# ---------------------------------------------------------------- equivalences
def test_bidirectional_wrapper_equals_the_bidirectional_layer():
    layer = _lstm(3, 4, bidirectional=True)
    wrapped = nn.Bidirectional(_lstm(3, 4), _lstm(3, 4))
    for d, module in enumerate((wrapped.forward_module, wrapped.backward_module)):
        for base in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(module, base + "_l0")[...] = getattr(layer, base + "_l0" + ("_reverse" if d else ""))
    x = _x(2, 5, 3)
    np.testing.assert_allclose(wrapped.forward(x), layer.forward(x), atol=1e-12)
    g = _x(2, 5, 8, seed=3)
    np.testing.assert_allclose(wrapped.backward(x, g), layer.backward(x, g), atol=1e-12)


def test_fused_layer_skips_only_the_input_gradient_when_not_needed():
    net = nn.Sequential(nn.LSTM(3, 4, num_layers=2, rng=0), nn.LastStep(), nn.Linear(4, 2, rng=0)).to(F64)
    x, g = _x(2, 5, 3), _x(2, 2, seed=2)
    net.zero_grad_parameters()
    net.forward(x)
    net.backward(x, g)
    full = [a.copy() for a in net.parameters()[1]]
    net.compute_grad_input = False
    net.zero_grad_parameters()
    net.forward(x)
    assert net.backward(x, g) is None
    for a, b in zip(full, net.parameters()[1]):
        np.testing.assert_allclose(a, b, atol=1e-14)


# ---------------------------------------------------------------- PyTorch: nested states, padding rows
def test_lstm_cell_and_initial_state_match_pytorch():
    torch = pytest.importorskip("torch")
    cell = nn.LSTMCell(3, 4, rng=0).to(F64)
    tcell = torch.nn.LSTMCell(3, 4).double()
    for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(tcell, n).data = torch.tensor(getattr(cell, n))
    x, h, c = _x(2, 3), _x(2, 4, seed=1), _x(2, 4, seed=2)
    tx, th, tc = (torch.tensor(a, requires_grad=True) for a in (x, h, c))
    th2, tc2 = tcell(tx, (th, tc))
    h2, c2 = cell.forward([x, [h, c]])
    np.testing.assert_allclose(h2, th2.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(c2, tc2.detach().numpy(), atol=1e-12)
    gh, gc = _x(2, 4, seed=3), _x(2, 4, seed=4)
    torch.autograd.backward([th2, tc2], [torch.tensor(gh), torch.tensor(gc)])
    gx, (gh0, gc0) = cell.backward([x, [h, c]], [gh, gc])
    for ours, leaf in ((gx, tx), (gh0, th), (gc0, tc)):
        np.testing.assert_allclose(ours, leaf.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(cell.grad_weight_hh, tcell.weight_hh.grad.numpy(), atol=1e-12)

    lstm = _lstm(3, 4, num_layers=2)
    tl = torch.nn.LSTM(3, 4, num_layers=2, batch_first=True).double()
    for n in lstm._param_names:
        getattr(tl, n).data = torch.tensor(getattr(lstm, n))
    x, h0, c0 = _x(2, 5, 3), _x(2, 2, 4, seed=5), _x(2, 2, 4, seed=6)
    tx, th0, tc0 = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    ty, (thn, tcn) = tl(tx, (th0, tc0))
    y = lstm.forward([x, [h0, c0]])
    np.testing.assert_allclose(y, ty.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(lstm.final_state[0], thn.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(lstm.final_state[1], tcn.detach().numpy(), atol=1e-12)
    g = _x(2, 5, 4, seed=7)
    ty.backward(torch.tensor(g))
    gx, (gh0, gc0) = lstm.backward([x, [h0, c0]], g)
    for ours, leaf in ((gx, tx), (gh0, th0), (gc0, tc0)):
        np.testing.assert_allclose(ours, leaf.grad.numpy(), atol=1e-12)


def test_lookup_table_padding_row_matches_pytorch():
    torch = pytest.importorskip("torch")
    table = nn.LookupTable(6, 3, padding_index=0, rng=0).to(F64)
    assert np.all(table.weight[0] == 0)
    idx = np.array([[0, 2, 2, 5], [1, 0, 0, 3]])
    w = torch.tensor(table.weight, requires_grad=True)
    ty = torch.nn.functional.embedding(torch.tensor(idx), w, padding_idx=0)
    g = _x(2, 4, 3)
    ty.backward(torch.tensor(g))
    table.zero_grad_parameters()
    np.testing.assert_allclose(table.forward(idx), ty.detach().numpy())
    table.backward(idx, g)
    np.testing.assert_allclose(table.grad_weight, w.grad.numpy(), atol=1e-12)
    assert np.all(table.grad_weight[0] == 0)
