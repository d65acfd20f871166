"""Peak memory (RSS) of `ember train` on MNIST against the same job written in PyTorch.

    python benchmarks/memory.py [--epochs 1] [--threads 2] [--limit N]

from the repository root, with ember installed (``pip install -e .``) or from the source
tree: ``PYTHONPATH=src python benchmarks/memory.py``. It prints both peak RSS figures
and their ratio, e.g. (2026-12-03, 1 epoch, 2 threads, a shared 2-core machine)::

    ember train   peak RSS   220.3 MB   (test accuracy 97.16% after 1 epochs (42.1s))
    PyTorch job   peak RSS   794.5 MB   (epoch 1: test accuracy 96.70%)
    ratio ember / PyTorch: 0.28 (target <= 0.50: met)

Each job runs in its own process; its peak resident set size is the kernel's
``ru_maxrss`` for that process (``os.wait4``), everything included: Python, NumPy or
PyTorch's libraries, the data, the model. The jobs are the same: the bundled MNIST
(60000 + 10000 images), inputs standardized with the training set's mean and standard
deviation, the 784-1000-10 ReLU network, SGD (lr 0.05, momentum 0.9), minibatches of 64
shuffled every epoch, the test set evaluated after each epoch. The PyTorch job is written
as a PyTorch user would: the images as one float32 tensor, a ``TensorDataset`` and a
``DataLoader``. Needs PyTorch (``pip install torch``). Target: ember <= 0.5 x PyTorch.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

TORCH_JOB = r"""
import gzip, os, sys
import numpy as np
import torch
from torch import nn

folder, epochs, limit, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)


def idx(name):
    with gzip.open(os.path.join(folder, name + ".gz")) as f:
        data = f.read()
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


x_train = torch.from_numpy(idx("train-images-idx3-ubyte").copy()).float().reshape(-1, 784)
y_train = torch.from_numpy(idx("train-labels-idx1-ubyte").astype(np.int64))
x_test = torch.from_numpy(idx("t10k-images-idx3-ubyte").copy()).float().reshape(-1, 784)
y_test = torch.from_numpy(idx("t10k-labels-idx1-ubyte").astype(np.int64))
if limit:
    x_train, y_train = x_train[:limit], y_train[:limit]
mean, std = x_train.mean(), x_train.std()
x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_train, y_train), batch_size=64, shuffle=True)
model = nn.Sequential(nn.Linear(784, 1000), nn.ReLU(), nn.Linear(1000, 10), nn.LogSoftmax(dim=1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
loss_fn = nn.NLLLoss()
for epoch in range(epochs):
    model.train()
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(x_test[i:i + 1000]).argmax(1) == y_test[i:i + 1000]).sum()) for i in range(0, 10000, 1000))
    print(f"epoch {epoch + 1}: test accuracy {correct / 100:.2f}%")
"""


def peak_rss_mb(command, env):
    """Run ``command``; return (its peak RSS in MB, its exit status)."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"{command[:3]} failed ({process.returncode}):\n{output}")
    last = [line for line in output.splitlines() if "accuracy" in line][-1:]
    return usage.ru_maxrss / 1024, (last or [""])[0].strip()  # Linux reports KiB


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="first N training images only (0: all 60000)")
    args = parser.parse_args(argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        sys.exit("benchmarks/memory.py compares with PyTorch: pip install torch")
    from ember.data.mnist import bundled_dir

    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    ember_cmd = [sys.executable, "-m", "ember", "train", "--epochs", str(args.epochs), "--no-progress",
                 "--threads", str(args.threads)] + (["--limit", str(args.limit)] if args.limit else [])  # fmt: skip
    torch_cmd = [sys.executable, "-c", TORCH_JOB, bundled_dir(), str(args.epochs), str(args.limit), str(args.threads)]
    ember_mb, ember_line = peak_rss_mb(ember_cmd, env)
    torch_mb, torch_line = peak_rss_mb(torch_cmd, env)
    print(f"ember train   peak RSS {ember_mb:7.1f} MB   ({ember_line})")
    print(f"PyTorch job   peak RSS {torch_mb:7.1f} MB   ({torch_line})")
    ratio = ember_mb / torch_mb
    print(f"ratio ember / PyTorch: {ratio:.2f} (target <= 0.50: {'met' if ratio <= 0.5 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
