"""Unsupervised learning: dictionaries, sparse codes and feature pipelines (issue 18).

k-means (:mod:`ember.unsup.kmeans`), patches (:mod:`ember.unsup.patches`), convolutional
feature pipelines (:mod:`ember.unsup.pipeline`) and pre-training of a ConvNet's first
stage (:mod:`ember.unsup.pretrain`).
"""

from .kmeans import KMeans, triangle
from .patches import all_patches, normalize_patches, random_patches
from .pipeline import FeaturePipeline, LinearEncoder, TriangleEncoder, Whitening, fit_kmeans_pipeline, pool_grid, train_linear
