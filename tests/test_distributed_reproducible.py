"""The reproducible reduction (``--grad-shards S``, ember.distributed.reproducible): the
tree sum, the chunked gradient against the plain one, dropout masks, refusals, and (with
MPI) 1 process against 2 ranks bit for bit in float32."""

from __future__ import annotations

import os

import numpy as np
import pytest

from ember import io, nn, runtime
from ember.distributed.reproducible import (ChunkedFeval, TreeSum, check_shards, chunk_bounds, one_blas_thread,
                                            rank_chunks, wrap_noise)  # fmt: skip
from ember.training import TrainOptions, fit, make_feval
from test_distributed import ember_train, needs_mpi
import distributed_helper as helper


def _tree(leaves):
    while len(leaves) > 1:
        leaves = [leaves[i] + leaves[i + 1] for i in range(0, len(leaves), 2)]
    return leaves[0]


@pytest.mark.parametrize("n", [1, 2, 4, 8, 16])
def test_tree_sum_is_the_balanced_binary_tree_bit_for_bit(n):
    rng = np.random.default_rng(n)
    leaves = [(rng.normal(size=257) * 10.0 ** rng.integers(-3, 4, size=257)).astype(np.float32) for _ in range(n)]
    g, tree = np.empty(257, dtype=np.float32), TreeSum()
    for rounds in range(2):  # the buffers are reused by the next batch
        for i, leaf in enumerate(leaves):
            g[...] = leaf  # the model's gradient buffer, overwritten by every chunk
            tree.add(g, last=i == n - 1)
        assert np.array_equal(g, _tree(leaves)), rounds
    sequential = leaves[0].copy()
    for leaf in leaves[1:]:
        sequential += leaf
    assert n < 4 or not np.array_equal(sequential, g)  # the order matters in float32: the tree is a choice


def test_tree_sum_refuses_a_count_that_is_not_a_power_of_two():
    tree, g = TreeSum(), np.ones(3)
    for _ in range(2):
        tree.add(g)
    with pytest.raises(ValueError, match="power of two"):
        tree.add(g, last=True)


@pytest.mark.parametrize("n, shards, ranks", [(64, 4, 2), (6, 4, 2), (3, 8, 4), (60000 % 64, 8, 8)])
def test_ranks_take_whole_subtrees_of_chunks_in_order(n, shards, ranks):
    bounds = chunk_bounds(n, shards)
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert max(b - a for a, b in bounds) - min(b - a for a, b in bounds) <= 1
    rows, chunks = [], []
    for rank in range(ranks):
        start, stop, mine = rank_chunks(rank, ranks, n, shards)
        rows.append((start, stop))
        chunks += [(c, start + lo, start + hi) for c, lo, hi in mine]
    assert chunks == [(c, a, b) for c, (a, b) in enumerate(bounds)]
    assert [r[0] for r in rows[1:]] == [r[1] for r in rows[:-1]]


@pytest.mark.parametrize("shards, ranks, message", [(3, 1, "power of two"), (0, 1, "power of two"),
                                                    (4, 3, "3 ranks run; use --grad-shards 4"),
                                                    (2, 4, "4 ranks run; use --grad-shards 4")])  # fmt: skip
def test_shard_counts_that_cannot_make_one_tree_are_refused(shards, ranks, message):
    with pytest.raises(ValueError, match=message):
        check_shards(shards, ranks)
    if ranks == 1 and shards:
        with pytest.raises(ValueError, match="grad_shards must be a power of two"):
            TrainOptions(grad_shards=shards)


def _mlp(dtype, seed=2):
    rng = np.random.default_rng(seed)
    model = nn.Sequential(nn.Linear(20, 32, rng=rng), nn.ReLU(), nn.Linear(32, 5, rng=rng), nn.LogSoftMax())
    return model.double() if dtype == np.float64 else model


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 2e-6)])
@pytest.mark.parametrize("batch", [64, 37, 3])
def test_the_chunked_gradient_is_the_whole_batch_gradient(dtype, tol, batch):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(batch, 20)).astype(dtype), rng.integers(0, 5, size=batch)
    model = _mlp(dtype)
    crit = nn.ClassNLLCriterion().double() if dtype == np.float64 else nn.ClassNLLCriterion()
    params, grads = model.get_parameters()
    loss, g = make_feval(model, crit, x, y, grads)(params)
    whole, correct = g.copy(), int((model.output.argmax(axis=1) == y).sum())
    chunked = ChunkedFeval(model, crit, x, y, grads, batch, 4)
    for _ in range(2):  # called again (the next step): the same numbers
        chunk_loss, g = chunked(params)
        assert g is grads and g.dtype == dtype
        np.testing.assert_allclose(g, whole, rtol=0, atol=tol * np.abs(whole).max())
        assert chunk_loss == pytest.approx(float(loss), rel=tol) and chunked.correct == correct


def test_chunk_gradients_do_not_depend_on_the_blas_thread_count():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(256, 20)).astype(np.float32), rng.integers(0, 5, size=256)
    model = _mlp(np.float32)
    params, grads = model.get_parameters()
    chunked, got = ChunkedFeval(model, nn.ClassNLLCriterion(), x, y, grads, 256, 2), []
    try:
        for threads in (1, 2):
            runtime.configure_threads(threads)
            got.append(chunked(params)[1].copy())
    finally:
        runtime.configure_threads(1)
    assert np.array_equal(got[0], got[1])


def test_one_blas_thread_restores_the_thread_count():
    from ember.distributed import reproducible

    calls = reproducible._blas_thread_calls()
    if calls is None:
        pytest.skip("no OpenBLAS loaded")
    get, put = calls
    put(2)
    try:
        with one_blas_thread():
            assert get() == 1
        assert get() == 2
    finally:
        put(1)


def test_dropout_masks_are_the_unchunked_ones():
    # float64: the chunked run follows the plain run to rounding only if every mask is the same
    data = helper.synthetic_data()
    runs = []
    for shards in (0, 4):
        model = nn.Sequential(nn.Linear(12, 32, rng=np.random.default_rng(4)), nn.ReLU(),
                              nn.Dropout(0.3, rng=np.random.default_rng(5)), nn.Linear(32, 3, rng=np.random.default_rng(6)),
                              nn.LogSoftMax()).double()  # fmt: skip
        options = TrainOptions(epochs=2, batch_size=11, seed=3, progress=False, grad_shards=shards)
        with open(os.devnull, "w") as quiet:
            history = fit(model, nn.ClassNLLCriterion(), data, options, out=quiet)
        runs.append((model.get_parameters()[0].copy(), history[-1]))
    np.testing.assert_allclose(runs[1][0], runs[0][0], rtol=0, atol=1e-12)
    assert runs[1][1]["train_acc"] == runs[0][1]["train_acc"]


def test_noise_outside_a_chunked_batch_is_the_generators():
    model = nn.Sequential(nn.Dropout(0.5, rng=np.random.default_rng(9)))
    (noise,) = wrap_noise(model)
    assert list(model.modules())[1].rng is noise
    assert noise.random() == np.random.default_rng(9).random()


def test_batch_normalization_is_refused():
    model = nn.Sequential(nn.Linear(12, 8), nn.BatchNormalization(8), nn.Linear(8, 3), nn.LogSoftMax())
    with pytest.raises(ValueError, match="does not support batch normalization"):
        fit(model, nn.ClassNLLCriterion(), helper.synthetic_data(), TrainOptions(epochs=1, grad_shards=2),
            out=open(os.devnull, "w"))  # fmt: skip


@needs_mpi
def test_one_process_and_two_ranks_train_bit_for_bit_alike_in_float32(tmp_path):
    # 4 chunks: 2 per rank (the local tree and the exchange); dropout (the masks cut in chunks); the
    # single process on 2 BLAS threads (the chunks run on one); the test accuracy printed alike
    args = ["--grad-shards", "4", "--dropout", "0.2", "--optimizer", "adam", "--epochs", "1"]
    one = ember_train([*args, "--save", "one.safetensors", "--threads", "2"], tmp_path)
    two = ember_train([*args, "--save", "two.safetensors"], tmp_path, ranks=2)
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stdout + two.stderr
    assert "tree-summed" in one.stdout and "of 4 chunks, tree-summed" in two.stdout
    a, b = (io.read_tensors(str(tmp_path / f"{name}.safetensors"))[0] for name in ("one", "two"))
    assert a["1.weight"].dtype == np.float32 and sorted(a) == sorted(b)
    for name in a:
        assert np.array_equal(a[name], b[name]), name
    lines = [[line for line in r.stdout.splitlines() if line.startswith("epoch")] for r in (one, two)]
    assert len(lines[0]) == 1 and [line.split("time")[0] for line in lines[0]] == [
        line.split("time")[0] for line in lines[1]]
