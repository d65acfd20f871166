"""Training on real MNIST with small budgets: the Graph network of examples/graph_mnist.py
against its Sequential equivalent (and its end-to-end finite-difference check), and the
siamese network of examples/siamese_mnist.py."""

import os
import sys

import numpy as np
import pytest

from ember import nn
from ember.testing import check_gradients, check_random_directions

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
import graph_mnist  # noqa: E402 - a broken example must fail here, not skip
import siamese_mnist  # noqa: E402


@pytest.fixture(scope="module")
def mnist_subset():
    return graph_mnist.load(5000)


def test_graph_with_fan_out_merge_and_switch_trains_like_the_equivalent_sequential(mnist_subset):
    train_set, (x, s, y) = mnist_subset
    test_set = (x[:2000], s[:2000], y[:2000])
    assert 0.3 < train_set[1].mean() < 0.7  # both heads are used
    graph = graph_mnist.graph_net(np.random.default_rng(0), hidden=32)
    sequential = graph_mnist.sequential_net(graph)
    logs = {}
    for name, net in (("graph", graph), ("sequential", sequential)):
        logs[name] = []
        graph_mnist.train(net, train_set, epochs=2, seed=1, log=logs[name].append)
    accuracies = [graph_mnist.accuracy(net, test_set) for net in (graph, sequential)]
    assert accuracies[0] > 0.8
    assert abs(accuracies[0] - accuracies[1]) <= 0.002, accuracies
    assert [line.split("(")[0] for line in logs["graph"]] == [line.split("(")[0] for line in logs["sequential"]]


def test_graph_gradients_pass_the_finite_difference_check_end_to_end(mnist_subset):
    (x, s, _), _ = mnist_subset
    picks = [int(np.flatnonzero(s == 0)[0]), int(np.flatnonzero(s == 1)[0]), int(np.flatnonzero(s == 0)[1])]
    inputs = [x[picks].astype(np.float64), s[picks]]
    small = graph_mnist.graph_net(np.random.default_rng(0), hidden=3).to("numpy:float64")
    report = check_gradients(small, inputs)
    assert report.ok, report
    assert len(report.errors) == 1 + 8  # the image input and 4 Linear layers (weight, bias)
    full = graph_mnist.graph_net(np.random.default_rng(0), hidden=64).to("numpy:float64")
    report = check_random_directions(full, inputs, directions=4)
    assert report.ok, report


def test_siamese_network_with_contrastive_loss_separates_digits():
    xtr, ytr, xte, yte = siamese_mnist.load(6000)
    rng = np.random.default_rng(0)
    branch = siamese_mnist.embedding_net(rng, hidden=(128, 64))
    net = siamese_mnist.siamese_net(branch)
    twin = net.get(1)
    siamese_mnist.train(net, nn.ContrastiveCriterion(), xtr, ytr, epochs=3, rng=rng, lr=0.1, log=lambda line: None)
    assert twin.get(0).weight is branch.get(0).weight  # still one set of weights
    assert net.get_parameters()[0].size == sum(p.size for p in branch.parameters()[0])
    ztr, zte = siamese_mnist.embed(branch, xtr), siamese_mnist.embed(branch, xte[:2000])
    assert ztr.shape[1] == 2 and np.ptp(ztr, axis=0).min() > 0.1  # not collapsed to a point
    accuracy = siamese_mnist.nearest_neighbour_accuracy(ztr, ytr, zte, yte[:2000])
    assert accuracy > 0.6, accuracy  # 72.7% measured (chance: 10%); the full example reaches 96.5%
