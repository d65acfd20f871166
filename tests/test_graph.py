"""Graph: construction, fan-out, several inputs/outputs, shared modules, errors, rendering, files."""

import numpy as np
import pytest

import ember
from ember import ShapeError, nn
from ember.testing import check_gradients

F64 = "numpy:float64"
rng = np.random.default_rng(0)


def a(*shape):
    return rng.standard_normal(shape)


def test_calling_a_module_on_nodes_builds_a_node_and_on_arrays_computes():
    x = nn.Input()
    lin = nn.Linear(3, 2, rng=0)
    node = lin(x)
    assert isinstance(node, nn.Node) and node.module is lin and node.parents == [x]
    assert isinstance(nn.Identity()(), nn.Node)
    assert lin(np.ones((1, 3), dtype="float32")).shape == (1, 2)
    table = nn.CAddTable()([x, node])
    assert table.table and table.parents == [x, node]
    with pytest.raises(TypeError, match=r"Linear\(3 -> 2\): to build a graph node, call the module on nodes only"):
        lin(x, np.ones(3))
    with pytest.raises(TypeError, match="not iterable"):
        list(x)


def test_fan_out_gradients_are_summed():
    x = nn.Input()
    y = nn.CAddTable()(nn.Identity()(x), nn.MulConstant(2.0)(x), nn.MulConstant(-0.5)(x))
    g = nn.Graph(x, y).to(F64)
    inp, go = a(3, 4), a(3, 4)
    np.testing.assert_allclose(g.forward(inp), 2.5 * inp)
    np.testing.assert_allclose(g.backward(inp, go), 2.5 * go)


def test_several_inputs_and_outputs():
    x1, x2 = nn.Input("x1"), nn.Input("x2")
    s = nn.CAddTable()(x1, x2)
    p = nn.CMulTable()(x1, x2)
    g = nn.Graph([x1, x2], [s, p, x1]).to(F64)
    u, v = a(2, 3), a(2, 3)
    out = g.forward([u, v])
    assert len(out) == 3
    np.testing.assert_allclose(out[0], u + v)
    np.testing.assert_allclose(out[1], u * v)
    go = [a(2, 3), a(2, 3), a(2, 3)]
    gu, gv = g.backward([u, v], go)
    np.testing.assert_allclose(gu, go[0] + go[1] * v + go[2])  # x1 is also an output itself
    np.testing.assert_allclose(gv, go[0] + go[1] * u)
    assert check_gradients(g, [u, v]).ok


def test_module_used_twice_accumulates_into_one_gradient():
    lin = nn.Linear(3, 3, rng=1)
    x = nn.Input()
    g = nn.Graph(x, nn.Tanh()(lin(nn.Tanh()(lin(x))))).to(F64)
    assert len(g.parameters()[0]) == 2  # weight and bias once
    # the same network with an explicit shared clone
    twin_a = nn.Linear(3, 3, rng=1)
    seq = nn.Sequential(twin_a, nn.Tanh(), twin_a.clone("weight", "bias"), nn.Tanh()).to(F64)
    inp, go = a(4, 3), a(4, 3)
    for net in (g, seq):
        net.zero_grad_parameters()
        net.forward(inp)
        net.backward(inp, go)
    np.testing.assert_allclose(g.forward(inp), seq.forward(inp), rtol=1e-12)
    np.testing.assert_allclose(g.children()[1].grad_weight, seq.get(0).grad_weight, rtol=1e-12)
    np.testing.assert_allclose(g.children()[1].grad_bias, seq.get(0).grad_bias, rtol=1e-12)
    flat, _ = g.get_parameters()
    assert flat.size == 12
    assert check_gradients(g, inp).ok  # replicas follow the flattening


def test_a_container_and_a_module_inside_it_both_used_in_one_graph():
    lin = nn.Linear(3, 3, rng=2)
    block = nn.Sequential(lin, nn.Tanh())
    x = nn.Input()
    g = nn.Graph(x, lin(block(x))).to(F64)
    assert check_gradients(g, a(2, 3)).ok


def test_split_and_nested_graphs():
    x = nn.Input()
    first, second = nn.ConcatTable(nn.Linear(3, 2, rng=0), nn.Linear(3, 2, rng=1))(x).split(2)
    inner = nn.Graph(x, nn.CSubTable()(first, second))
    y = nn.Input()
    outer = nn.Graph(y, nn.Tanh()(inner(nn.Linear(4, 3, rng=2)(y)))).to(F64)
    net = nn.Sequential(outer, nn.Sum(1)).to(F64)
    assert net.forward(a(5, 4)).shape == (5,)
    assert check_gradients(net, a(5, 4)).ok


def test_graph_errors():
    x, s = nn.Input("x"), nn.Input("s")
    h = nn.Linear(3, 3)(x)
    y = nn.Tanh()(h)
    with pytest.raises(ValueError, match=r"input 1 \(Node\(s: Identity\)\) does not reach any output"):
        nn.Graph([x, s], y)
    orphan = nn.Identity()()
    with pytest.raises(ValueError, match="has no parents and is not among the inputs"):
        nn.Graph(x, nn.CAddTable()(y, orphan))
    with pytest.raises(ValueError, match="input 0 .* has parents"):
        nn.Graph(h, y)
    with pytest.raises(ValueError, match="appears twice among the inputs"):
        nn.Graph([x, x], y)
    with pytest.raises(TypeError, match="outputs must be a Node"):
        nn.Graph(x, np.ones(3))
    g = nn.Graph([x, s], nn.CAddTable()(y, s)).to(F64)
    with pytest.raises(ShapeError, match=r"^Graph: expected a table \(list\) of 2 inputs \(one per graph input\), got a list of 3"):
        g.forward([a(2, 3)] * 3)
    with pytest.raises(ShapeError, match=r"Graph: expected a table \(list\) of 2 inputs"):
        g.forward(a(2, 3))
    with pytest.raises(ShapeError) as info:
        g.forward([a(2, 4), a(2, 3)])
    assert "Linear(3 -> 3): expected input (N, 3)" in str(info.value)
    assert "in node 2 (Linear(3 -> 3)) of Graph" in "".join(info.value.__notes__)
    two = nn.Graph(x, [y, h]).to(F64)
    two.forward(a(2, 3))
    with pytest.raises(ShapeError, match=r"Graph: expected grad_output as a table of 2 entries \(one per output\)"):
        two.backward(a(2, 3), a(2, 3))


def test_cycles_are_rejected():
    x = nn.Input()
    h1 = nn.Tanh()(x)
    h2 = nn.Tanh()(h1)
    h1.parents.append(h2)  # only reachable by editing nodes by hand
    h1.table = True
    with pytest.raises(ValueError, match="cycle"):
        nn.Graph(x, h2)


def test_text_rendering_and_dot_export(tmp_path):
    x = nn.Input("pixels")
    lin = nn.Linear(4, 4)
    h = nn.ReLU()(lin(x)).annotate("hidden", color="red")
    g = nn.Graph(x, nn.CAddTable()(h, lin(h)))
    text = repr(g)
    assert text.startswith("Graph {") and text.endswith("}")
    assert "(0) pixels = Identity <- input 0" in text
    assert "(2) hidden = ReLU <- (1)" in text
    assert "(3) Linear(4 -> 4) <- (2)  [same module as (1)]" in text
    assert "(4) CAddTable <- [(2), (3)]" in text
    assert "outputs: (4)" in text
    dot = g.to_dot("net", path=tmp_path / "g.dot")
    assert dot == (tmp_path / "g.dot").read_text()
    assert dot.startswith('digraph "net" {') and dot.rstrip().endswith("}")
    assert 'n2 [label="(2) hidden\\nReLU", color="red"];' in dot
    assert 'n2 -> n4 [label="0"];' in dot and 'n3 -> n4 [label="1"];' in dot
    assert "in0 -> n0;" in dot and "n4 -> out0;" in dot


def test_save_load_keeps_structure_names_and_sharing(tmp_path):
    lin = nn.Linear(3, 3, rng=3)
    x = nn.Input("x")
    g = nn.Graph(x, nn.Tanh()(lin(nn.Tanh()(lin(x)).annotate("mid")))).to(F64)
    ember.save(g, tmp_path / "g.safetensors")
    again = ember.load(tmp_path / "g.safetensors", backend=F64)
    assert repr(again) == repr(g)
    inp = a(2, 3)
    np.testing.assert_allclose(again.forward(inp), g.forward(inp), rtol=1e-12)
    flat, _ = again.get_parameters()
    assert flat.size == 12


def test_modes_moves_and_clear_state_reach_every_use():
    drop = nn.Dropout(0.5, rng=0)
    x = nn.Input()
    g = nn.Graph(x, nn.CAddTable()(drop(x), drop(x)))
    inp = np.ones((3, 4), dtype="float32")
    g.evaluate()
    np.testing.assert_array_equal(g.forward(inp), 2 * inp)
    g.training()
    assert (g.forward(inp) != 2 * inp).any()
    g.to(F64).evaluate()
    np.testing.assert_array_equal(g.forward(inp.astype("float64")), 2 * inp)
    g.clear_state()
    assert g.forward(inp.astype("float64")).dtype == np.float64


def test_two_uses_of_a_dropout_draw_different_masks():
    drop = nn.Dropout(0.5, rng=0)
    x = nn.Input()
    g = nn.Graph(x, [drop(x), drop(x)])
    first, second = g.forward(np.ones((4, 50), dtype="float32"))
    assert (first != second).any()
