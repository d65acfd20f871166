"""A character-level language model: an LSTM learns to predict the next character of a
text file, then writes new text one character at a time.

    python examples/char_lm.py FILE [--hidden 256] [--epochs 2] [--sample 600]

With no FILE it trains on the concatenated sources of Python's standard library
(about 4.7 MB of any Python installation). The network::

    LookupTable(V, E) -> LSTM(E, H, layers) -> Sequencer(Linear(H, V)) -> Sequencer(LogSoftMax)
    criterion: SequencerCriterion(ClassNLLCriterion())  (mean nats per character)

Training is truncated back-propagation through time over B parallel streams of the
text: each call sees T characters per stream, ``remember()`` carries the LSTM's state
from one chunk to the next, and the gradient stops at the chunk boundary. The last
``--valid`` fraction of the file is held out; its loss (nats per character) is printed
after every epoch. Plain SGD with momentum and gradient-norm clipping.
"""

from __future__ import annotations

import argparse
import glob
import math
import os
import sys
import sysconfig
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

import ember  # noqa: E402
from ember import nn, optim  # noqa: E402
from ember.training import make_feval  # noqa: E402


def stdlib_text():
    """The concatenated .py files of the running Python's standard library."""
    folder = sysconfig.get_paths()["stdlib"]
    parts = []
    for path in sorted(glob.glob(os.path.join(folder, "*.py"))):
        with open(path, encoding="utf-8", errors="replace") as handle:
            parts.append(handle.read())
    return "".join(parts), f"{folder}/*.py"


def encode(text):
    """(indices int64, alphabet): each character's index in the sorted alphabet."""
    alphabet = sorted(set(text))
    lookup = {c: i for i, c in enumerate(alphabet)}
    return np.fromiter((lookup[c] for c in text), dtype=np.int64, count=len(text)), alphabet


def build(vocab, embed, hidden, layers, dropout, rng):
    return nn.Sequential(
        nn.LookupTable(vocab, embed, rng=rng),
        nn.LSTM(embed, hidden, num_layers=layers, dropout=dropout, rng=rng),
        nn.Sequencer(nn.Linear(hidden, vocab, rng=rng)),
        nn.Sequencer(nn.LogSoftMax()),
    )


def streams(data, batch):
    """Cut the text into ``batch`` contiguous streams, one row each: (batch, L)."""
    length = (len(data) - 1) // batch
    return data[: batch * length].reshape(batch, length), data[1 : batch * length + 1].reshape(batch, length)


def evaluate(model, crit, data, batch, steps):
    """Mean loss (nats per character) over ``data``, carrying the state along the streams."""
    model.evaluate()
    lstm = model.get(1)
    lstm.remember("eval").forget()
    x, y = streams(data, batch)
    total = count = 0.0
    for start in range(0, x.shape[1], steps):
        xb, yb = x[:, start : start + steps], y[:, start : start + steps]
        total += crit.forward(model.forward(xb), yb) * yb.size
        count += yb.size
    model.training()
    lstm.remember("train").forget()
    return total / count


def sample(model, alphabet, length, temperature, rng, prime="\n"):
    """Generate ``length`` characters one at a time, feeding each back as the next input."""
    model.evaluate()
    lstm = model.get(1)
    lstm.remember("eval").forget()
    lookup = {c: i for i, c in enumerate(alphabet)}
    out = [c for c in prime if c in lookup]
    logp = model.forward(np.array([[lookup[c] for c in out]], dtype=np.int64))[0, -1]
    for _ in range(length):
        p = np.exp((logp - logp.max()) / temperature)
        p /= p.sum()
        nxt = int(rng.choice(len(alphabet), p=p))
        out.append(alphabet[nxt])
        logp = model.forward(np.array([[nxt]], dtype=np.int64))[0, -1]
    lstm.forget()
    model.training()
    return "".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", nargs="?", help="a text file (default: Python's standard library sources)")
    parser.add_argument("--embed", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--batch", type=int, default=64, help="parallel streams (B)")
    parser.add_argument("--steps", type=int, default=64, help="characters per stream and call (T, the BPTT length)")
    parser.add_argument("--epochs", type=float, default=2.0, help="passes over the training text (fractions allowed)")
    parser.add_argument("--lr", type=float, default=1.0)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--clip", type=float, default=1.0, help="clip the gradient's L2 norm to this")
    parser.add_argument("--lr-decay", type=float, default=0.0, help="Torch7 annealing lr / (1 + t * decay)")
    parser.add_argument("--valid", type=float, default=0.05, help="fraction of the file held out for validation")
    parser.add_argument("--limit", type=int, help="use only the first N characters of the file")
    parser.add_argument("--sample", type=int, default=600, help="characters to generate at the end")
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="BLAS threads")
    parser.add_argument("--save", help="write the trained model here (pickle-free)")
    parser.add_argument("--log-every", type=int, default=100, help="print the training loss every N steps")
    args = parser.parse_args(argv)
    if args.threads:
        from ember.runtime import configure_threads

        configure_threads(args.threads)

    if args.file:
        with open(args.file, encoding="utf-8", errors="replace") as handle:
            text, source = handle.read(), args.file
    else:
        text, source = stdlib_text()
    if args.limit:
        text = text[: args.limit]
    data, alphabet = encode(text)
    split = int(len(data) * (1 - args.valid))
    train, valid = data[:split], data[split:]
    if len(valid) < 2 * args.steps or len(train) < args.batch * args.steps + 1:
        raise SystemExit(f"char_lm: {source} is too short ({len(data)} characters) for --batch {args.batch} --steps {args.steps}")
    print(f"text: {source}, {len(data):,} characters, alphabet of {len(alphabet)}; "
          f"train {len(train):,} / validation {len(valid):,}", flush=True)  # fmt: skip

    rng = np.random.default_rng(args.seed)
    model = build(len(alphabet), args.embed, args.hidden, args.layers, args.dropout, rng)
    model.compute_grad_input = False  # the input is indices: no gradient needed
    crit = nn.SequencerCriterion(nn.ClassNLLCriterion())
    lstm = model.get(1)
    lstm.remember("train")
    print(model, flush=True)
    params, grads = model.get_parameters()
    config = {"learning_rate": args.lr, "momentum": args.momentum, "dampening": 0.0, "learning_rate_decay": args.lr_decay}
    state = {}
    x, y = streams(train, args.batch)
    chunks = x.shape[1] // args.steps
    total_steps = max(1, round(args.epochs * chunks))
    print(f"{args.batch} streams x {args.steps} steps per call, {chunks} calls per epoch, {total_steps} calls", flush=True)

    start, running, step = time.perf_counter(), None, 0
    while step < total_steps:
        lstm.forget()
        for chunk in range(chunks):
            if step >= total_steps:
                break
            xb = x[:, chunk * args.steps : (chunk + 1) * args.steps]
            yb = y[:, chunk * args.steps : (chunk + 1) * args.steps]

            feval = make_feval(model, crit, xb, yb, grads, lambda _, g: optim.clip_grad_norm(g, args.clip))
            _, (loss,) = optim.sgd(feval, params, config, state)
            if not math.isfinite(loss):
                raise SystemExit(f"char_lm: the loss became {loss} at step {step}; try a smaller --lr")
            running = loss if running is None else 0.98 * running + 0.02 * loss
            step += 1
            if step % args.log_every == 0:
                rate = step * args.batch * args.steps / (time.perf_counter() - start)
                print(f"step {step:>6}/{total_steps}  train loss {running:.3f} nats/char  {rate:,.0f} chars/s", flush=True)
            if step % chunks == 0 or step == total_steps:
                v = evaluate(model, crit, valid, min(args.batch, len(valid) // (2 * args.steps)), args.steps)
                print(f"epoch {step / chunks:.2f}  validation loss {v:.4f} nats/char ({v / math.log(2):.3f} bits)  "
                      f"time {time.perf_counter() - start:.0f}s", flush=True)  # fmt: skip
    if args.save:
        ember.save(model, args.save, {"alphabet": "".join(alphabet)})
        print(f"model saved to {args.save}")
    print(f"--- sample (temperature {args.temperature}) ---")
    print(sample(model, alphabet, args.sample, args.temperature, rng))
    return v


if __name__ == "__main__":
    main()
