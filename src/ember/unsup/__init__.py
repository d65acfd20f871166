"""ember.unsup: unsupervised learning of features (Torch7's ``unsup`` package; issue 18).

Energy-based models, each a module whose output is the energy of each sample (or, for the
encoders, the code), with a bprop checked by finite differences like any other module:
sparse coding inferred by FISTA (:class:`FistaL1`, convolutional :class:`SpatialConvFistaL1`),
predictive sparse decomposition (:class:`PSD`, :class:`ConvPSD`), learned ISTA
(:class:`LISTA`), (denoising) auto-encoders (:class:`AutoEncoder`) and the energy terms
:class:`L1Cost` and :class:`Diag`. FISTA itself is :func:`ember.optim.fista`.

Dictionaries and pipelines: k-means (:mod:`ember.unsup.kmeans`), patches
(:mod:`ember.unsup.patches`), convolutional feature pipelines (:mod:`ember.unsup.pipeline`).
"""

from .autoencoder import AutoEncoder
from .costs import Diag, L1Cost
from .kmeans import KMeans, triangle
from .lista import LISTA
from .patches import all_patches, normalize_patches, random_patches
from .pipeline import FeaturePipeline, LinearEncoder, TriangleEncoder, Whitening, fit_kmeans_pipeline, pool_grid, train_linear
from .pretrain import pretrain_convolutions
from .psd import PSD, ConvPSD
from .sparse_pipeline import fit_psd_pipeline
from .sparse_coding import FistaL1, SpatialConvFistaL1, conv_lipschitz

#: the energy-based modules (each has a gradient-checked case in tests/cases_unsup.py)
MODULES = ["FistaL1", "SpatialConvFistaL1", "PSD", "ConvPSD", "LISTA", "AutoEncoder", "Diag", "L1Cost"]

__all__ = MODULES + [
    "conv_lipschitz",
    "KMeans", "triangle", "all_patches", "normalize_patches", "random_patches",
    "FeaturePipeline", "LinearEncoder", "TriangleEncoder", "Whitening", "fit_kmeans_pipeline", "pool_grid",
    "train_linear",
    "fit_psd_pipeline", "pretrain_convolutions",
]  # fmt: skip
