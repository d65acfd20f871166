"""Shared weights: clone/share share parameters and gradients; flattening and optimizer
steps see each shared array once (siamese pairs, a module used twice in a graph)."""

import numpy as np
import pytest

import ember
from ember import nn, optim
from ember.testing import check_gradients

F64 = "numpy:float64"
rng = np.random.default_rng(0)


def a(*shape):
    return rng.standard_normal(shape)


def branch(seed=0):
    r = np.random.default_rng(seed)
    return nn.Sequential(nn.Linear(4, 5, rng=r), nn.Tanh(), nn.Linear(5, 2, rng=r))


def siamese(*names):
    b1 = branch().to(F64)
    return nn.ParallelTable(b1, b1.clone(*(names or ("weight", "bias")))).to(F64)


def grads_of(net, x, go):
    net.zero_grad_parameters()
    net.forward(x)
    net.backward(x, go)
    return [g.copy() for g in net.parameters()[1]]


@pytest.mark.parametrize("names", [("weight", "bias"), ("weight", "bias", "grad_weight", "grad_bias")])
def test_siamese_gradients_accumulate_in_one_place(names):
    net = siamese(*names)
    b1, b2 = net.get(0), net.get(1)
    assert b1.get(0).weight is b2.get(0).weight and b1.get(0).grad_weight is b2.get(0).grad_weight
    assert len(net.parameters()[0]) == 4  # two Linear layers, weight + bias, once each
    x1, x2, g1, g2 = a(3, 4), a(3, 4), a(3, 2), a(3, 2)
    both = grads_of(net, [x1, x2], [g1, g2])
    alone = branch().to(F64)
    separate = [p + q for p, q in zip(grads_of(alone, x1, g1), grads_of(alone, x2, g2))]
    for got, want in zip(both, separate):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    assert check_gradients(net, [x1, x2]).ok


def test_get_parameters_counts_shared_arrays_once_and_sgd_moves_them_once():
    net = siamese()
    n_branch = sum(p.size for p in branch().parameters()[0])
    flat, grads = net.get_parameters()
    assert flat.size == grads.size == n_branch
    x, go = [a(3, 4), a(3, 4)], [a(3, 2), a(3, 2)]
    before = flat.copy()
    expected_step = -0.1 * np.concatenate([g.ravel() for g in grads_of(net, x, go)])

    def feval(_):
        net.zero_grad_parameters()
        net.forward(x)
        net.backward(x, go)
        return 0.0, grads

    optim.sgd(feval, flat, {"learning_rate": 0.1})
    np.testing.assert_allclose(flat - before, expected_step, rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(net.get(0).get(0).weight, net.get(1).get(0).weight)
    assert np.shares_memory(net.get(1).get(2).bias, flat)
    # update_parameters also steps each shared array once (Torch7 issue torch7#716)
    w = net.get(0).get(0).weight.copy()
    g = net.get(0).get(0).grad_weight.copy()
    net.update_parameters(0.5)
    np.testing.assert_allclose(net.get(1).get(0).weight, w - 0.5 * g)


def test_flattening_twice_or_one_clone_alone_keeps_the_sharing():
    net = siamese()
    net.get_parameters()
    flat, _ = net.get_parameters()
    assert np.shares_memory(net.get(1).get(0).weight, flat)
    b1 = branch().to(F64)
    b2 = b1.clone("weight", "bias")
    flat1, grads1 = b1.get_parameters()  # Torch7's trap: only one copy flattened
    assert np.shares_memory(b2.get(0).weight, flat1) and np.shares_memory(b2.get(2).grad_bias, grads1)
    b1.zero_grad_parameters()
    x = a(2, 4)
    b2.forward(x)
    b2.backward(x, np.ones((2, 2)))
    assert np.abs(grads1).sum() > 0


def test_shared_parameter_without_its_gradient_is_reported():
    b1 = branch()
    b2 = branch(1)
    b2.get(0).weight = b1.get(0).weight
    with pytest.raises(ValueError, match="shared with another module but its gradient is not"):
        nn.ParallelTable(b1, b2).get_parameters()


def test_sharing_survives_moves_and_files(tmp_path):
    net = siamese()
    net.to("numpy:float32").to(F64)
    assert net.get(0).get(0).weight is net.get(1).get(0).weight
    assert net.get(0).get(0).weight.shape == (5, 4)
    ember.save(net, tmp_path / "s.safetensors")
    again = ember.load(tmp_path / "s.safetensors", backend=F64)
    assert again.get(0).get(2).bias is again.get(1).get(2).bias
    assert again.get(0).get(2).grad_bias is again.get(1).get(2).grad_bias
    flat, _ = again.get_parameters()
    assert flat.size == sum(p.size for p in branch().parameters()[0])


def test_the_same_module_twice_in_a_container_or_a_tree_is_safe():
    lin = nn.Linear(4, 3, rng=0)
    same = nn.ParallelTable(lin, lin).to(F64)  # one module, two uses
    twin = nn.ParallelTable(nn.Linear(4, 3, rng=0), nn.Linear(4, 3, rng=0)).to(F64)
    twin.get(1).share(twin.get(0), "weight", "bias")
    x, go = [a(2, 4), a(2, 4)], [a(2, 3), a(2, 3)]
    out = same.forward(x)
    assert out[0] is not out[1]
    for got, want in zip(grads_of(same, x, go), grads_of(twin, x, go)):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    assert same.get(0).weight.shape == (3, 4) and same.get(0).bias.shape == (3,)  # to() met it twice
    assert check_gradients(same, x).ok


def test_a_module_used_twice_in_a_graph_trains_with_sgd():
    shared = nn.Linear(3, 3, rng=4)
    x = nn.Input()
    g = nn.Graph(x, shared(nn.Tanh()(shared(x)))).to(F64)
    flat, grads = g.get_parameters()
    assert flat.size == 12
    inp, target = a(8, 3), a(8, 3) * 0.1
    mse = nn.MSECriterion().to(F64)
    losses = []

    def feval(_):
        g.zero_grad_parameters()
        loss = mse.forward(g.forward(inp), target)
        g.backward(inp, mse.backward(g.output, target))
        return loss, grads

    for _ in range(50):
        losses.append(optim.sgd(feval, flat, {"learning_rate": 0.1})[1][0])
    assert losses[-1] < 0.5 * losses[0]
    assert np.shares_memory(shared.weight, flat)


def test_a_clone_shares_the_random_stream_so_its_dropout_draws_its_own_masks():
    net = nn.Sequential(nn.Linear(20, 50, rng=0), nn.Dropout(0.5, rng=1))
    twin = net.clone("weight", "bias")
    assert twin.get(1).rng is net.get(1).rng
    x = np.ones((4, 20), np.float32)
    assert not np.array_equal(net.forward(x) != 0, twin.forward(x) != 0)


def test_recurrent_layer_dropouts_are_part_of_the_tree():
    lstm = nn.LSTM(3, 4, num_layers=3, dropout=0.5, rng=0)
    inner = [m for m in lstm.modules() if isinstance(m, nn.Dropout)]
    assert len(inner) == 2
    lstm.evaluate()
    assert not any(m.train for m in inner)
    from ember.training.checkpoint import generators

    assert len(generators(lstm)) >= 1  # their generator is saved with a checkpoint
