"""ember.unsup: unsupervised learning of features (Torch7's ``unsup`` package).

Sparse coding inferred by FISTA (:class:`FistaL1`, convolutional :class:`SpatialConvFistaL1`),
predictive sparse decomposition (:class:`PSD`, :class:`ConvPSD`), learned ISTA
(:class:`LISTA`), (denoising) auto-encoders (:class:`AutoEncoder`) and their energy terms
(:class:`L1Cost`, :class:`Diag`). Each model is a module whose output is the energy of each
sample (or, for the encoders, the code), with a bprop checked by finite differences like any
other module. FISTA itself is :func:`ember.optim.fista`.
"""

from .autoencoder import AutoEncoder
from .costs import Diag, L1Cost
from .lista import LISTA
from .psd import PSD, ConvPSD
from .sparse_coding import FistaL1, SpatialConvFistaL1, conv_lipschitz

__all__ = ["Diag", "L1Cost", "FistaL1", "SpatialConvFistaL1", "PSD", "ConvPSD", "LISTA", "AutoEncoder", "conv_lipschitz"]
