"""The figures of docs/unsupervised.md (docs/img/unsup_*.png), from 10000 MNIST digits:

    PYTHONPATH=src python examples/unsup_figures.py [--out docs/img]

- unsup_kmeans_dictionary.png: 100 of K=400 k-means centroids (6x6, whitened space)
- unsup_kmeans_filters.png: the same centroids seen on raw pixels (whitening folded in, W c_k)
- unsup_psd_dictionary.png: PSD's dictionary atoms (K=64, 6x6 whitened space)
- unsup_codes.png: a digit and its triangle-code maps for 16 centroids (23x23 each)
- unsup_convnet_filters.png: convnet-lcn's first stage pre-trained by spherical k-means
"""

import argparse
import os
import sys

import ember

ember.configure_threads(1)

import numpy as np  # noqa: E402

from ember.data.mnist import load_mnist  # noqa: E402
from ember.unsup.pipeline import fit_kmeans_pipeline  # noqa: E402
from ember.unsup.sparse_pipeline import fit_psd_pipeline  # noqa: E402
from ember.viz import filter_grid  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="docs/img")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    x = load_mnist(splits=("train",))["train"][0][:10000]
    pipe = fit_kmeans_pipeline(x, k=400, n_patches=200000, seed=0)
    c = pipe.encoder.centroids
    filter_grid(c[:100].reshape(-1, 6, 6), os.path.join(args.out, "unsup_kmeans_dictionary.png"), scale=5)
    filter_grid((c[:100] @ pipe.whitening.w.T).reshape(-1, 6, 6), os.path.join(args.out, "unsup_kmeans_filters.png"), scale=5)
    maps = pipe.code_maps(x[:1])[0]  # (23, 23, K)
    busiest = np.argsort(-maps.reshape(-1, maps.shape[-1]).sum(0))[:15]
    digit = np.zeros((23, 23))
    digit[:] = x[0, 2:25, 2:25] / 255.0  # the digit, cropped to the code map's size, as the first tile
    tiles = np.concatenate([digit[None], maps[..., busiest].transpose(2, 0, 1)])
    filter_grid(tiles, os.path.join(args.out, "unsup_codes.png"), scale=3, columns=8)
    pipe_psd, psd = fit_psd_pipeline(x, k=64, n_patches=50000, epochs=2, seed=0)
    atoms = psd.backend.to_numpy(psd.dictionary).T  # (K, D): one atom per column of D
    filter_grid(atoms.reshape(-1, 6, 6), os.path.join(args.out, "unsup_psd_dictionary.png"), scale=5)
    from ember.models.convnets import convnet_lcn
    from ember.training import load_dataset
    from ember.unsup.pretrain import pretrain_convolutions

    data = load_dataset((1, 28, 28), limit=10000)
    net = convnet_lcn(rng=np.random.default_rng(0))
    (w,) = pretrain_convolutions(net, data.x_train, stages=(0,), seed=0)
    filter_grid(w, os.path.join(args.out, "unsup_convnet_filters.png"))
    print(f"figures written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
