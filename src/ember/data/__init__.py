"""ember.data: dataset readers, minibatch iteration and input preprocessing."""

from .batches import Standardizer, minibatches
from .checks import check_dataset
from .layout import to_model_layout
from .cifar import download_cifar10, load_cifar10
from .idx import parse_idx, read_idx
from .mnist import download_mnist, load_mnist
from .named import DATASETS, load_idx_set, load_named
from .pose import PoseSet, load_pose_set, render_pose_set
from .preprocess import ZCA, make_preprocessor
from .svhn import download_svhn, load_svhn

__all__ = ["load_mnist", "download_mnist", "read_idx", "parse_idx", "minibatches", "Standardizer",
           "ZCA", "make_preprocessor", "PoseSet", "render_pose_set", "load_pose_set", "load_svhn", "download_svhn",
           "load_cifar10", "download_cifar10", "load_idx_set", "load_named", "DATASETS", "check_dataset",
           "to_model_layout"]
