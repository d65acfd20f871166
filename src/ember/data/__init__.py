"""ember.data: dataset readers, minibatch iteration and input preprocessing."""

from .batches import Standardizer, minibatches
from .idx import parse_idx, read_idx
from .mnist import download_mnist, load_mnist
from .pose import PoseSet, load_pose_set, render_pose_set
from .preprocess import ZCA, make_preprocessor

__all__ = ["load_mnist", "download_mnist", "read_idx", "parse_idx", "minibatches", "Standardizer",
           "ZCA", "make_preprocessor", "PoseSet", "render_pose_set", "load_pose_set"]
