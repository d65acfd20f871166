"""Table modules: bad inputs raise clear errors naming the module; specific behaviours."""

import numpy as np
import pytest

from ember import ShapeError, nn

F64 = "numpy:float64"
rng = np.random.default_rng(0)


def a(*shape):
    return rng.standard_normal(shape)


def m64(module):
    return module.to(F64)


# ---------------------------------------------------------------- bad table inputs
@pytest.mark.parametrize(
    "module, input, words",
    [
        # wrong length
        (nn.CSubTable(), [a(2, 3)], ["CSubTable", "table (list) of 2 arrays", "1 entries"]),
        (nn.CDivTable(), [a(2, 3)] * 3, ["CDivTable", "2 arrays", "3 entries"]),
        (nn.PairwiseDistance(), [a(2, 3)], ["PairwiseDistance", "2 arrays"]),
        (nn.ParallelTable(nn.Tanh(), nn.Tanh()), [a(2)] * 3, ["ParallelTable", "2 entries (one per child)", "3 entries"]),
        (nn.SelectTable(3), [a(2)] * 2, ["SelectTable(3)", "entry 3", "2 entries"]),
        (nn.NarrowTable(1, 2), [a(2)] * 2, ["NarrowTable", "at least 3", "2 entries"]),
        (nn.MixtureTable(), [a(4, 3), [a(4, 2)] * 2], ["MixtureTable", "3 experts", "2 experts"]),
        (nn.Switch(2), [0, a(2), a(2), a(2)], ["Switch(2 inputs)", "3 entries", "4 entries"]),
        # not a table
        (nn.CAddTable(), a(2, 3), ["CAddTable", "a table (list)", "(2, 3)"]),
        (nn.JoinTable(), a(2, 3), ["JoinTable", "a table (list)"]),
        # mismatched shapes
        (nn.CAddTable(), [a(2, 3), a(2, 4)], ["CAddTable", "one shape (entry 0 is (2, 3))", "entry 1 of shape (2, 4)"]),
        (nn.CMaxTable(), [a(2, 3), a(3, 3)], ["CMaxTable", "entry 1 of shape (3, 3)"]),
        (nn.CosineDistance(), [a(2, 3), a(2, 4)], ["CosineDistance", "entry 1 of shape (2, 4)"]),
        (nn.JoinTable(-1), [a(2, 3), a(3, 3)], ["JoinTable(dim=-1)", "agree on every axis but 1", "entry 1 of shape (3, 3)"]),
        (nn.Switch(), [np.array([0, 1]), a(2, 3), a(2, 4)], ["Switch", "entry 2 of shape (2, 4)"]),
        (nn.Switch(), [np.array([0, 1, 1]), a(2, 3), a(2, 3)], ["Switch", "N = 3", "(2, 3)"]),
        (nn.MixtureTable(), [a(4, 2), [a(3, 5), a(3, 5)]], ["MixtureTable", "N = 4", "(3, 5)"]),
        # wrong entry types
        (nn.CAddTable(), [a(2), "x"], ["CAddTable", "table entry 1", "expected an array", "str"]),
        (nn.CAddTable(), [a(2), a(2).astype("float32")], ["CAddTable", "table entry 1", "float64", "float32"]),
        # selector out of range or of the wrong kind
        (nn.Switch(), [np.array([0, 2, 1]), a(3, 2), a(3, 2)], ["Switch", "selector values must be in [0, 1]", "got 2"]),
        (nn.Switch(), [np.array([0, -1, 1]), a(3, 2), a(3, 2)], ["Switch", "[0, 1]", "got -1"]),
        (nn.Switch(), [5, a(3, 2), a(3, 2)], ["Switch", "selector must be in [0, 1]", "got 5"]),
        (nn.Switch(), [np.array([0.0, 1.0]), a(2, 2), a(2, 2)], ["Switch", "selector (table entry 0)", "integer", "float64"]),
        (nn.Switch(), [True, a(2, 2), a(2, 2)], ["Switch", "selector (table entry 0)", "bool"]),
        # layout
        (nn.SplitTable(3), a(2, 3), ["SplitTable(dim=3)", "out of range", "2 axes"]),
        (nn.Parallel(1, 1, nn.Tanh(), nn.Tanh()), a(2, 3, 4), ["Parallel", "2 slices along axis 1", "(2, 3, 4)"]),
        (nn.Euclidean(4, 2), a(3, 5), ["Euclidean(4 -> 2)", "(N, 4)", "(3, 5)"]),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else None,
)
def test_bad_table_inputs_raise_clear_errors(module, input, words):
    with pytest.raises(ShapeError) as info:
        m64(module).forward(input)
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


def test_bad_grad_output_tables():
    m = m64(nn.ConcatTable(nn.Tanh(), nn.Tanh()))
    x = a(2, 3)
    m.forward(x)
    with pytest.raises(ShapeError, match=r"ConcatTable.*grad_output as a table of 2 entries"):
        m.backward(x, [a(2, 3)])
    s = m64(nn.SplitTable(0))
    s.forward(x)
    with pytest.raises(ShapeError, match=r"SplitTable.*table of 2 arrays of shape \(3,\)"):
        s.backward(x, [a(3), a(4)])


def test_error_inside_a_container_names_the_child():
    net = m64(nn.ParallelTable(nn.Linear(3, 2), nn.Linear(4, 2)))
    with pytest.raises(ShapeError) as info:
        net.forward([a(2, 3), a(2, 5)])
    assert "Linear(4 -> 2)" in str(info.value)
    assert "in module 1 (Linear(4 -> 2)) of ParallelTable" in "".join(info.value.__notes__)


def test_criteria_reject_bad_pairs_and_labels():
    c = m64(nn.ContrastiveCriterion())
    z = [a(4, 2), a(4, 2)]
    with pytest.raises(ShapeError, match=r"ContrastiveCriterion\(margin=1\).*0 \(similar\) or 1 \(dissimilar\).*got -1"):
        c.forward(z, np.array([0, 1, -1, 0]))
    with pytest.raises(ShapeError, match=r"ContrastiveCriterion.*targets of shape \(4,\).*\(3,\)"):
        c.forward(z, np.array([0, 1, 1]))
    with pytest.raises(ShapeError, match=r"ContrastiveCriterion.*entry 1 of shape \(4, 3\)"):
        c.forward([a(4, 2), a(4, 3)], np.zeros(4, int))
    with pytest.raises(ShapeError, match=r"HingeEmbeddingCriterion.*\+1 \(similar\) or -1.*got 0"):
        m64(nn.HingeEmbeddingCriterion()).forward(a(3), np.array([1.0, 0.0, -1.0]))
    with pytest.raises(ShapeError, match=r"ParallelCriterion.*target table of 2 entries"):
        m64(nn.ParallelCriterion().add(nn.MSECriterion()).add(nn.MSECriterion())).forward([a(2), a(2)], a(2))
    with pytest.raises(ValueError, match="margin must be > 0"):
        nn.ContrastiveCriterion(0)


def test_bad_constructor_arguments():
    for make, word in [
        (lambda: nn.PairwiseDistance(0), "PairwiseDistance: p"),
        (lambda: nn.JoinTable("x"), "JoinTable: dim"),
        (lambda: nn.NarrowTable(-1), "NarrowTable: offset"),
        (lambda: nn.Replicate(0), "Replicate: n_features"),
        (lambda: nn.Switch(0), "Switch: n_inputs"),
        (lambda: nn.Euclidean(0, 3), "Euclidean: in_features"),
        (lambda: nn.Concat("a"), "Concat: dim"),
    ]:
        with pytest.raises(ValueError, match=word):
            make()


# ---------------------------------------------------------------- behaviour
def test_switch_routes_each_sample_and_only_the_chosen_input_gets_a_gradient():
    sw = m64(nn.Switch())
    x0, x1, x2 = a(4, 3), a(4, 3), a(4, 3)
    s = np.array([2, 0, 1, 2])
    y = sw.forward([s, x0, x1, x2])
    np.testing.assert_array_equal(y, np.stack([x2[0], x0[1], x1[2], x2[3]]))
    go = a(4, 3)
    g = sw.backward([s, x0, x1, x2], go)
    assert g[0] is None
    for k in range(3):
        np.testing.assert_array_equal(g[k + 1], go * (s == k)[:, None])
    # one selector for the whole batch (an int or a 0-d array)
    np.testing.assert_array_equal(sw.forward([np.array(1), x0, x1, x2]), x1)
    g = sw.backward([1, x0, x1, x2], go)
    np.testing.assert_array_equal(g[2], go)
    assert not g[1].any() and not g[3].any()


def test_cmax_table_sends_ties_to_the_first_entry():
    m = m64(nn.CMaxTable())
    x = np.array([[1.0, 2.0]])
    g = m.backward([x, x.copy()], m.forward([x, x.copy()]) * 0 + 1)
    np.testing.assert_array_equal(g[0], [[1, 1]])
    np.testing.assert_array_equal(g[1], [[0, 0]])


def test_concat_table_sums_the_gradients_of_its_branches():
    branch = nn.Linear(3, 2, rng=0)
    m = m64(nn.ConcatTable(branch, nn.Identity(), nn.MulConstant(2.0)))
    x, go = a(5, 3), [a(5, 2), a(5, 3), a(5, 3)]
    m.forward(x)
    g = m.backward(x, go)
    np.testing.assert_allclose(g, go[0] @ m.get(0).weight + go[1] + 2 * go[2])


def test_euclidean_is_the_square_root_of_squared_euclidean():
    e, s = m64(nn.Euclidean(4, 3, rng=1)), m64(nn.SquaredEuclidean(4, 3, rng=1))
    x = a(6, 4)
    np.testing.assert_allclose(e.forward(x) ** 2, s.forward(x), rtol=1e-12)
    w = e.weight
    np.testing.assert_allclose(e.output, np.linalg.norm(x[:, :, None] - w[None], axis=1), rtol=1e-12)
    # no singularity: the squared distance has gradient 0 at a prototype, the norm gets 0 by convention
    x = np.ascontiguousarray(w[:, :1].T)
    for m in (e, s):
        m.forward(x)
        assert np.isfinite(m.backward(x, np.ones((1, 3)))).all()


def test_contrastive_loss_matches_the_paper_and_has_no_0_over_0():
    c = m64(nn.ContrastiveCriterion(margin=2.0))
    z1, z2 = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]]), np.array([[3.0, 4.0], [0.6, 0.8], [1.0, 1.0]])
    y = np.array([0, 1, 1])  # similar at distance 5; dissimilar at 1 (inside the margin); dissimilar at 0
    loss = c.forward([z1, z2], y)
    assert loss == pytest.approx((0.5 * 25 + 0.5 * (2 - 1) ** 2 + 0.5 * 4) / 3)
    np.testing.assert_allclose(c.distance, [5, 1, 0])
    g1, g2 = c.backward([z1, z2], y)
    np.testing.assert_allclose(g1[0], (z1[0] - z2[0]) / 3)  # similar: delta
    np.testing.assert_allclose(g1[1], -(2 - 1) * (z1[1] - z2[1]) / 1 / 3)  # pushed apart
    np.testing.assert_array_equal(g1[2], [0, 0])  # D = 0: no direction, gradient 0 (finite)
    np.testing.assert_array_equal(g2, -g1)
    # similar pair at D = 0 is fine too (1/2 ||delta||^2 differentiated directly)
    c.forward([z1[2:], z2[2:]], np.array([0]))
    np.testing.assert_array_equal(c.backward([z1[2:], z2[2:]], np.array([0]))[0], [[0, 0]])


def test_map_table_replicas_follow_parameter_moves_and_accumulate():
    lin = nn.Linear(3, 2, rng=0)
    m = m64(nn.MapTable(lin))
    xs = [a(4, 3), a(4, 3), a(4, 3)]
    params, grads = m.get_parameters()
    assert params.size == 8
    m.zero_grad_parameters()
    out = m.forward(xs)
    assert all(o.shape == (4, 2) for o in out) and out[0] is not out[1]
    gos = [a(4, 2) for _ in xs]
    m.backward(xs, gos)
    expected = sum(g.T @ x for g, x in zip(gos, xs))
    np.testing.assert_allclose(m.get(0).grad_weight, expected)
    assert np.shares_memory(m.get(0).grad_weight, grads)
    params -= 0.1 * grads  # the optimizer's step reaches every replica
    np.testing.assert_allclose(m.forward(xs)[2], xs[2] @ m.get(0).weight.T + m.get(0).bias)


def test_branch_gradients_that_do_not_add_up_name_the_container():
    class Shrinking(nn.Identity):
        def update_grad_input(self, input, grad_output):
            self.grad_input = grad_output[:, :2].copy()  # a wrong-shaped input gradient
            return self.grad_input

    table = nn.ConcatTable(nn.Identity(), Shrinking())
    x = np.ones((2, 3), np.float32)
    table.forward(x)
    with pytest.raises(ShapeError, match=r"ConcatTable.*cannot add the branches' input gradients of different shapes"):
        table.backward(x, [np.ones((2, 3), np.float32), np.ones((2, 3), np.float32)])
