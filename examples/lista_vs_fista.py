"""Sparse coding, PSD and LISTA on whitened MNIST patches (ember.unsup, issue 18).

1. Patches: random 8x8 patches of MNIST training digits (patches with almost no ink are
   skipped), ZCA-whitened (``ember.data.ZCA``, fitted on the training patches) and scaled
   to unit mean norm; held-out patches come from the test digits.
2. Dictionary: ``unsup.FistaL1`` (code 2x overcomplete) learned by ``fit_batch``
   (FISTA codes, gradient step on the energy, unit-norm atoms).
3. PSD (Kavukcuoglu, Ranzato & LeCun 2008): ``unsup.PSD`` trained on the joint energy;
   reported: the encoder's relative error ``||F(x) - z*|| / ||z*||`` on held-out patches,
   against PSD's own codes z* (the joint energy's minimum) and against the plain sparse
   codes of its dictionary (alpha = 0).
4. LISTA (Gregor & LeCun 2010): for each number of steps, an ``unsup.LISTA`` (tied: the
   paper's model; and untied, ``tied=False``, a learned S_k and theta_k per step) started
   at ISTA (``init_from_dictionary``) and trained (Adam, MSE, batches of 50, learning rate
   decaying from 3e-3 to 1e-5) to predict the sparse codes (FISTA, ``--target-iters``) of
   the dictionary of step 2, on ``--lista-train`` patches (the dictionary's 20,000, then
   more from other training digits, drawn by their own generator); plotted beside FISTA
   and ISTA after k iterations (the paper's figure): relative error against the converged
   codes of the same held-out patches.

    python examples/lista_vs_fista.py                         # ~ a few minutes on one core
    python examples/lista_vs_fista.py --png docs/img/lista_vs_fista.png --json /tmp/unsup.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from ember import nn, optim, unsup
from ember.data import ZCA, load_mnist, minibatches
from ember.optim import fista, soft_threshold


def patches(images, n, size, rng, min_ink=0.1):
    """``n`` random size x size patches (pixels in [0, 1]) whose mean ink is at least ``min_ink``."""
    out = []
    while sum(len(p) for p in out) < n:
        p = unsup.random_patches(images, size, 4 * n, rng=rng, scale=1 / 255)
        out.append(p[p.mean(axis=1) >= min_ink])
    return np.concatenate(out)[:n]


def relative_error(z, z_star):
    """||z - z*||_F / ||z*||_F over the whole set."""
    return float(np.linalg.norm(z - z_star) / np.linalg.norm(z_star))


def sparse_codes(dictionary, x, lambd, iterations, accelerate=True):
    """FISTA (or ISTA) codes of x after exactly ``iterations`` steps from 0, step 1/||D||^2."""
    L = float(np.linalg.norm(dictionary, 2)) ** 2

    def f(z, need_grad):
        r = z @ dictionary.T - x
        return (0.5 * float(np.vdot(r, r)), r @ dictionary) if need_grad else 0.5 * float(np.vdot(r, r))

    config = {"L": L, "line_search": False, "max_iter": iterations, "err_thres": 0.0, "fista": accelerate}
    z, _ = fista(f, lambda z: lambd * float(np.abs(z).sum()), lambda z, L: soft_threshold(z, lambd / L, out=z),
                 np.zeros((x.shape[0], dictionary.shape[1])), config, {})  # fmt: skip
    return z


def train_dictionary(model, x, epochs, batch, lr, rng, label):
    start = time.time()
    for epoch in range(epochs):
        energies = [model.fit_batch(x[idx], lr) for idx in minibatches(len(x), batch, rng)]
        print(f"{label} epoch {epoch + 1}: mean energy {np.mean(energies):.4f} ({time.time() - start:.0f} s)", flush=True)
    return model


def train_lista(dictionary, lambd, steps, x, z_star, epochs, batch, lr, rng, final_lr=1e-5, tied=True):
    """An ``n_steps = steps`` LISTA (``tied``: the paper's; else untied) started at ISTA, trained
    by Adam on the MSE to the codes ``z_star``, the learning rate decaying exponentially from
    ``lr`` to ``final_lr``."""
    model = unsup.LISTA(x.shape[1], dictionary.shape[1], n_steps=steps, tied=tied).to("numpy:float64")
    model.init_from_dictionary(dictionary, lambd)
    params, grads = model.get_parameters()
    mse, state = nn.MSECriterion().to("numpy:float64"), {}
    total, step = epochs * -(-len(x) // batch), 0
    for _ in range(epochs):
        for idx in minibatches(len(x), batch, rng):
            xb, zb = x[idx], z_star[idx]

            def feval(_):
                model.zero_grad_parameters()
                loss = mse.forward(model.forward(xb), zb)
                model.backward(xb, mse.backward(model.output, zb))
                return loss, grads

            optim.adam(feval, params, {"learning_rate": lr * (final_lr / lr) ** (step / total)}, state)
            step += 1
    return model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=8)
    ap.add_argument("--train", type=int, default=20000)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--code", type=int, default=128)
    ap.add_argument("--lambd", type=float, default=0.1)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=5.0)
    ap.add_argument("--lista-steps", default="1,2,3,5,7", help="steps of the (tied, the paper's) LISTA models")
    ap.add_argument("--untied-steps", default="2,3,5", help="steps of the untied LISTA models ('' for none)")
    ap.add_argument("--lista-train", type=int, default=20000,
                    help="LISTA training patches: the dictionary's, then more from other training digits")
    ap.add_argument("--target-iters", type=int, default=200, help="FISTA iterations of LISTA's training targets")
    ap.add_argument("--lista-epochs", type=int, default=20)
    ap.add_argument("--lista-lr", type=float, default=3e-3)
    ap.add_argument("--fista-iters", type=int, default=30)
    ap.add_argument("--no-psd", action="store_true", help="skip step 3 (PSD)")
    ap.add_argument("--png", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                    help="only combine earlier runs' --json files (LISTA curves run as separate processes) into --png/--json")
    args = ap.parse_args(argv)
    if args.merge:
        results = merge(args.merge)
        save(results, args.json)
        if args.png:
            plot(results, args.png)
        return results
    rng = np.random.default_rng(args.seed)
    t0 = time.time()

    # 1. whitened patches
    mnist = load_mnist()
    train = patches(mnist["train"][0], args.train, args.size, rng)
    test = patches(mnist["test"][0], args.test, args.size, rng)
    zca = ZCA(eps=0.1).fit(train)
    x_train, x_test = zca.transform(train, "float64"), zca.transform(test, "float64")
    norm = float(np.linalg.norm(x_train, axis=1).mean())
    x_train /= norm
    x_test /= norm
    print(f"patches: {len(x_train)} train, {len(x_test)} held out, {x_train.shape[1]} pixels", flush=True)
    results: dict = {"conditions": vars(args)}

    # 2. dictionary by sparse coding
    coder = unsup.FistaL1(x_train.shape[1], args.code, lambd=args.lambd, max_iter=100, rng=rng).to("numpy:float64")
    train_dictionary(coder, x_train, args.epochs, 100, args.lr, rng, "sparse coding")
    dictionary = coder.dictionary.copy()
    converged = dict(max_iter=1000, err_thres=1e-7)
    exact = unsup.FistaL1(x_train.shape[1], args.code, lambd=args.lambd, **converged).to("numpy:float64")
    exact.decoder.weight[...] = dictionary
    z_test = exact.infer(x_test).copy()
    results["sparse_coding"] = {"held_out_mean_energy": float(exact.output.mean()),
                                "nonzero_fraction": float((z_test != 0).mean()),
                                "relative_reconstruction_error": relative_error(z_test @ dictionary.T, x_test)}  # fmt: skip
    print("sparse coding:", results["sparse_coding"], flush=True)

    # 3. PSD
    if not args.no_psd:  # (LISTA below does not depend on it: it draws from its own generators)
        psd = unsup.PSD(x_train.shape[1], args.code, lambd=args.lambd, alpha=args.alpha, max_iter=100, rng=rng)
        psd = psd.to("numpy:float64")
        train_dictionary(psd, x_train, args.epochs, 100, args.lr, rng, "PSD")
        psd.evaluate()
        z_pred = psd.encode(x_test)
        joint = unsup.PSD(x_train.shape[1], args.code, lambd=args.lambd, alpha=args.alpha, **converged).to("numpy:float64")
        joint.decoder.weight[...] = psd.dictionary
        for mine, theirs in zip(joint.encoder.parameters()[0], psd.encoder.parameters()[0]):
            mine[...] = theirs
        z_joint = joint.infer(x_test).copy()
        plain = unsup.FistaL1(x_train.shape[1], args.code, lambd=args.lambd, **converged).to("numpy:float64")
        plain.decoder.weight[...] = psd.dictionary
        z_plain = plain.infer(x_test).copy()
        results["psd"] = {"encoder_vs_psd_codes": relative_error(z_pred, z_joint),
                          "encoder_vs_sparse_codes": relative_error(z_pred, z_plain),
                          "nonzero_fraction_psd_codes": float((z_joint != 0).mean()),
                          "relative_reconstruction_error": relative_error(z_joint @ psd.dictionary.T, x_test)}  # fmt: skip
        print("PSD:", results["psd"], flush=True)

    # 4. LISTA against FISTA / ISTA, errors against the converged codes of step 2's dictionary;
    # extra training patches come from their own generator, so the held-out patches, the
    # dictionary and FISTA's curve do not depend on --lista-train
    x_lista = x_train
    if args.lista_train > len(x_train):
        more = patches(mnist["train"][0], args.lista_train - len(x_train), args.size, np.random.default_rng([args.seed, 1]))
        x_lista = np.concatenate([x_train, zca.transform(more, "float64") / norm])
    z_lista = sparse_codes(dictionary, x_lista, args.lambd, args.target_iters)  # the training targets z*
    results["lista_targets_held_out_error"] = relative_error(sparse_codes(dictionary, x_test, args.lambd, args.target_iters), z_test)
    print(f"LISTA training set: {len(x_lista)} patches, targets FISTA-{args.target_iters} (held out: "
          f"{results['lista_targets_held_out_error']:.1e} from the converged codes) ({time.time() - t0:.0f} s)", flush=True)
    iters = list(range(1, args.fista_iters + 1))
    results["fista"] = {k: relative_error(sparse_codes(dictionary, x_test, args.lambd, k), z_test) for k in iters}
    results["ista"] = {k: relative_error(sparse_codes(dictionary, x_test, args.lambd, k, False), z_test) for k in iters}
    for name, tied, steps_list in (("lista", True, args.lista_steps), ("lista_untied", False, args.untied_steps)):
        results[name] = {}
        for steps in [int(s) for s in steps_list.split(",") if s]:
            model = train_lista(dictionary, args.lambd, steps, x_lista, z_lista, args.lista_epochs, 50, args.lista_lr,
                                np.random.default_rng([args.seed, 2, steps, tied]), tied=tied)  # fmt: skip
            model.evaluate()
            results[name][steps] = relative_error(model.forward(x_test), z_test)
            print(f"{name} {steps} steps: {results[name][steps]:.4f} (train {relative_error(model.forward(x_lista), z_lista):.4f};"
                  f" FISTA {steps} iterations: {results['fista'].get(steps, float('nan')):.4f}) ({time.time() - t0:.0f} s)", flush=True)  # fmt: skip
            results["seconds"] = time.time() - t0
            save(results, args.json)  # after each model: a long run cut short keeps what it measured
    print("FISTA:", {k: round(v, 4) for k, v in results["fista"].items() if k in (1, 2, 3, 5, 10, 20, 30)})
    print("ISTA:", {k: round(v, 4) for k, v in results["ista"].items() if k in (1, 2, 3, 5, 10, 20, 30)})
    results["seconds"] = time.time() - t0
    print(f"total {results['seconds']:.0f} s")

    save(results, args.json)
    if args.png:
        plot(results, args.png)
    return results


def save(results, path):
    """Write ``results`` as JSON to ``path`` (nothing when it is None or empty)."""
    if path:
        with open(path, "w") as fh:
            json.dump(results, fh, indent=1)


CURVES = ("fista", "ista", "lista", "lista_untied")


def merge(paths):
    """One result from several runs that differ only in which LISTA curves they trained: the
    FISTA/ISTA curves (same dictionary, same held-out patches) must agree."""
    runs = []
    for path in paths:
        with open(path) as fh:
            run = json.load(fh)
        runs.append({**run, **{c: {int(k): v for k, v in run.get(c, {}).items()} for c in CURVES}})
    out = dict(runs[0], merged_from=list(paths), seconds=[r["seconds"] for r in runs])
    for run in runs[1:]:
        if run["fista"] != out["fista"] or run["ista"] != out["ista"]:
            raise ValueError("merge: the runs' FISTA/ISTA curves differ (not the same dictionary / held-out patches)")
        for c in ("lista", "lista_untied"):
            out[c] = {**out[c], **run[c]}
    return out


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, style in (("fista", "o-"), ("ista", "s--")):
        ks = sorted(results[name])
        ax.plot(ks, [results[name][k] for k in ks], style, ms=3, label=name.upper() + " (k iterations)")
    for name, style, label in (("lista", "D-", "LISTA (k learned steps, tied: the paper's)"),
                               ("lista_untied", "^-", "LISTA untied (S_k, theta_k per step)")):  # fmt: skip
        ks = sorted(results.get(name, {}))
        if ks:
            ax.plot(ks, [results[name][k] for k in ks], style, ms=4, label=label)
    if 10 in results["fista"]:
        ax.axhline(results["fista"][10], color="gray", lw=0.8, ls=":", label="FISTA, 10 iterations (the goal)")
    ax.set_yscale("log")
    ax.set_xlabel("iterations / unrolled steps k")
    ax.set_ylabel("||z_k - z*|| / ||z*||  (held out)")
    c = results["conditions"]
    ax.set_title(f"whitened MNIST {c['size']}x{c['size']} patches, code {c['code']}, lambda {c['lambd']}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    print("wrote", path)


if __name__ == "__main__":
    main()
