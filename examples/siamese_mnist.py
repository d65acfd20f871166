"""A siamese network trained with the DrLIM contrastive loss on MNIST pairs.

Two copies of one network G (the second is ``G.clone("weight", "bias")``: shared weights
and shared gradients) map two digits to points of the plane; the loss of Hadsell,
Chopra & LeCun (2006) pulls pairs of the same digit together (Y = 0, "similar") and
pushes pairs of different digits at least ``margin`` apart (Y = 1, "dissimilar"). No
class label is used except to say whether two images show the same digit.

The learned 2-D embedding is then judged with a nearest-neighbour classifier
(each test digit gets the label of the closest training digit in the plane), and the
test embedding is drawn as a scatter plot (PNG, needs matplotlib).

    python examples/siamese_mnist.py                 # full run (about 2 minutes, 1 thread)
    python examples/siamese_mnist.py --epochs 3 --train 10000 --png /tmp/s.png
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
from ember.drlim import embed, siamese_net
from ember.training import load_dataset, make_feval


def embedding_net(rng, hidden=(512, 256), dim=2):
    """G: 784 -> hidden ReLU layers -> a point of R^dim."""
    layers, width = [], 784
    for h in hidden:
        layers += [nn.Linear(width, h, rng=rng), nn.ReLU()]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, dim, rng=rng))


def make_pairs(labels, rng, similar_fraction=0.5):
    """One pair per training image, in random order: ``(first, second, Y)`` index arrays;
    Y = 0 (same digit, similar) for about ``similar_fraction`` of them, else Y = 1."""
    n = len(labels)
    first = rng.permutation(n)
    y = (rng.random(n) >= similar_fraction).astype(np.int64)
    classes = np.unique(labels)
    members = {c: np.flatnonzero(labels == c) for c in classes}
    wanted = labels[first].copy()
    # dissimilar pairs: a partner from another class, chosen uniformly among the others
    shift = rng.integers(1, len(classes), size=n)
    position = np.searchsorted(classes, wanted)
    wanted = np.where(y == 1, classes[(position + shift) % len(classes)], wanted)
    second = np.empty(n, dtype=np.int64)
    for c in classes:
        rows = np.flatnonzero(wanted == c)
        second[rows] = members[c][rng.integers(0, len(members[c]), size=len(rows))]
    return first, second, y


def train(net, criterion, x, labels, epochs, rng, batch_size=128, lr=0.2, momentum=0.9, log=print):
    """Minibatch SGD with momentum on fresh random pairs every epoch (the lecture's feval
    loop); the learning rate is multiplied by 0.8 after every epoch."""
    params, grads = net.get_parameters()
    config = {"learning_rate": lr, "momentum": momentum, "dampening": 0.0}
    for epoch in range(epochs):
        first, second, y = make_pairs(labels, rng)
        total, count, start = 0.0, 0, time.perf_counter()
        net.training()
        for batch in minibatches(len(first), batch_size, rng):
            feval = make_feval(net, criterion, [x[first[batch]], x[second[batch]]], y[batch], grads)
            total += optim.sgd(feval, params, config)[1][0] * len(batch)
            count += len(batch)
        config["learning_rate"] *= 0.8
        log(f"epoch {epoch + 1}/{epochs}: contrastive loss {total / count:.4f} ({time.perf_counter() - start:.1f} s)")
    return net


def nearest_neighbour_accuracy(train_z, train_y, test_z, test_y, k=1, chunk=250):
    """Accuracy of the k-nearest-neighbour classifier (majority vote) in embedding space."""
    correct = 0
    sq_train = (train_z.astype(np.float64) ** 2).sum(1)
    for i in range(0, len(test_z), chunk):
        z = test_z[i : i + chunk].astype(np.float64)
        d = sq_train[None, :] - 2 * z @ train_z.T.astype(np.float64)
        nearest = np.argpartition(d, k - 1, axis=1)[:, :k] if k > 1 else d.argmin(1)[:, None]
        votes = train_y[nearest]
        predicted = np.array([np.bincount(v, minlength=10).argmax() for v in votes])
        correct += int((predicted == test_y[i : i + chunk]).sum())
    return correct / len(test_z)


def scatter_png(z, labels, path, title):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # checked in main() before training; only a direct caller gets here
        raise ImportError("scatter_png needs matplotlib: pip install matplotlib") from None
    fig, ax = plt.subplots(figsize=(7, 7), dpi=110)
    points = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", s=2, alpha=0.6, vmin=-0.5, vmax=9.5)
    fig.colorbar(points, ax=ax, ticks=range(10), label="digit")
    ax.set_title(title)
    ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def load(n_train=None):
    """Standardized MNIST as (x_train, y_train, x_test, y_test), the first ``n_train``
    training images only if given."""
    data = load_dataset((784,), limit=n_train)
    return np.asarray(data.x_train), data.y_train, np.asarray(data.x_test), data.y_test  # float32 arrays


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--train", type=int, default=0, help="use the first N training images (0: all 60000)")
    parser.add_argument("--margin", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=0.2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--png", default="siamese_mnist.png", help="scatter plot of the test embedding")
    args = parser.parse_args(argv)
    if args.png:  # a missing matplotlib is reported now, not after the training
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            sys.exit("siamese_mnist.py: error: --png needs matplotlib (pip install matplotlib, or 'ember[plot]'); "
                     "pass --png '' to skip the plot")  # fmt: skip
    start = time.perf_counter()
    xtr, ytr, xte, yte = load(args.train)
    rng = np.random.default_rng(args.seed)
    branch = embedding_net(rng)
    net = siamese_net(branch)
    criterion = nn.ContrastiveCriterion(margin=args.margin)
    print(net)
    train(net, criterion, xtr, ytr, args.epochs, rng, args.batch_size, args.lr)
    train_time = time.perf_counter() - start
    ztr, zte = embed(branch, xtr), embed(branch, xte)
    acc1 = nearest_neighbour_accuracy(ztr, ytr, zte, yte, k=1)
    acc5 = nearest_neighbour_accuracy(ztr, ytr, zte, yte, k=5)
    print(f"test accuracy of the nearest neighbour in the 2-D embedding: 1-NN {100 * acc1:.2f}%, 5-NN {100 * acc5:.2f}%")
    print(f"time: {train_time:.1f} s (loading + training), {time.perf_counter() - start:.1f} s in all")
    if args.png:
        path = scatter_png(zte, yte, args.png, f"siamese MNIST, DrLIM loss: test set, 1-NN accuracy {100 * acc1:.2f}%")
        if path:
            print(f"scatter plot written to {path}")
    return acc1


if __name__ == "__main__":
    main()
