"""A Graph network with fan-out, a CAddTable merge and a Switch, trained on MNIST, next to
the equivalent Sequential network (same modules, same initial weights).

    image -> Linear -> ReLU = h --------------------+
                           \\-> Linear -> ReLU = r --+-> CAddTable = m  (residual merge)
    m -> Linear = head 0,  m -> Linear = head 1    (fan-out of m)
    Switch(selector, head 0, head 1) -> LogSoftMax

The selector is a discrete input computed from the image: 1 when the digit has more
ink than the training median, else 0 -- each head specialises on one kind of digit,
and only the selected head receives a gradient (the lecture's Switch module).

The Sequential version builds the same function from table containers
(ConcatTable for the fan-outs, ParallelTable, FlattenTable). Trained with the same
minibatches, both reach the same accuracy.

    python examples/graph_mnist.py                 # full run (about 1 minute per network)
    python examples/graph_mnist.py --train 10000 --epochs 2 --dot graph.dot
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from ember import nn, optim
from ember.data import minibatches
from ember.training import load_dataset, make_feval


def graph_net(rng, hidden=256, n_in=784):
    """The Graph version; its input is the table [images (N, 784), selector (N,)]."""
    x, s = nn.Input("image"), nn.Input("selector")
    h = nn.ReLU()(nn.Linear(n_in, hidden, rng=rng)(x)).annotate("h")
    r = nn.ReLU()(nn.Linear(hidden, hidden, rng=rng)(h)).annotate("r")
    m = nn.CAddTable()(h, r).annotate("merge")
    heads = [nn.Linear(hidden, 10, rng=rng)(m).annotate(f"head {k}") for k in range(2)]
    y = nn.LogSoftMax()(nn.Switch()(s, *heads))
    return nn.Graph([x, s], y)


def sequential_net(graph):
    """The same function as ``graph_net`` built from Sequential and table containers,
    starting from copies of the graph's weights."""
    lin1, lin2, head0, head1 = (m.clone() for m in graph.children() if isinstance(m, nn.Linear))
    trunk = nn.Sequential(
        lin1, nn.ReLU(),
        nn.ConcatTable(nn.Identity(), nn.Sequential(lin2, nn.ReLU())),  # fan-out of h
        nn.CAddTable(),                                                   # merge
        nn.ConcatTable(head0, head1),                                     # fan-out of m
    )  # fmt: skip
    return nn.Sequential(
        nn.ParallelTable(trunk, nn.Identity()),          # [[head 0, head 1], selector]
        nn.ConcatTable(nn.SelectTable(1), nn.SelectTable(0)),  # [selector, [head 0, head 1]]
        nn.FlattenTable(),                               # [selector, head 0, head 1]
        nn.Switch(),
        nn.LogSoftMax(),
    )


def selector(images, threshold):
    """1 where the image has more ink than ``threshold`` (the training median), else 0."""
    return (images.mean(axis=1) > threshold).astype(np.int64)


def load(n_train=None):
    """((x, selector, y) train, (x, selector, y) test): standardized MNIST (the first
    ``n_train`` training images if given); the selector splits at the training median of
    the images' mean ink (standardizing keeps that order)."""
    data = load_dataset((784,), limit=n_train)
    x_train, x_test = np.asarray(data.x_train), np.asarray(data.x_test)  # float32 arrays (uint8 inside data)
    threshold = np.median(x_train.mean(axis=1))
    return ((x_train, selector(x_train, threshold), data.y_train),
            (x_test, selector(x_test, threshold), data.y_test))  # fmt: skip


def train(net, train_set, epochs, seed, batch_size=128, lr=0.05, momentum=0.9, log=print):
    """Minibatch SGD with momentum; the same ``seed`` gives the same minibatches."""
    x, s, y = train_set
    rng = np.random.default_rng(seed)
    criterion = nn.ClassNLLCriterion()
    params, grads = net.get_parameters()
    config = {"learning_rate": lr, "momentum": momentum, "dampening": 0.0}
    for epoch in range(epochs):
        net.training()
        total, start = 0.0, time.perf_counter()
        for batch in minibatches(len(y), batch_size, rng):
            feval = make_feval(net, criterion, [x[batch], s[batch]], y[batch], grads)
            total += optim.sgd(feval, params, config)[1][0] * len(batch)
        log(f"  epoch {epoch + 1}/{epochs}: loss {total / len(y):.4f} ({time.perf_counter() - start:.1f} s)")
    return net


def accuracy(net, data, batch_size=1000):
    x, s, y = data
    net.evaluate()
    correct = 0
    for i in range(0, len(y), batch_size):
        out = net.forward([x[i : i + batch_size], s[i : i + batch_size]])
        correct += int((out.argmax(axis=1) == y[i : i + batch_size]).sum())
    return correct / len(y)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train", type=int, default=0, help="use the first N training images (0: all)")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dot", default="", help="write the graph in Graphviz DOT to this file")
    args = parser.parse_args(argv)

    train_set, test_set = load(args.train)
    graph = graph_net(np.random.default_rng(args.seed), args.hidden)
    sequential = sequential_net(graph)
    print(graph)
    if args.dot:
        graph.to_dot("graph_mnist", path=args.dot)
        print(f"DOT written to {args.dot}")
    results = {}
    for name, net in (("Graph", graph), ("Sequential", sequential)):
        print(f"{name}:")
        start = time.perf_counter()
        train(net, train_set, args.epochs, args.seed)
        results[name] = accuracy(net, test_set)
        print(f"  test accuracy {100 * results[name]:.2f}% ({time.perf_counter() - start:.1f} s)")
    print(f"Graph {100 * results['Graph']:.2f}% vs equivalent Sequential {100 * results['Sequential']:.2f}%")
    return results


if __name__ == "__main__":
    main()
