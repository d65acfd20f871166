"""The DrLIM application (Hadsell, Chopra & LeCun 2006): a siamese net trained with a
contrastive loss maps rendered poses to a low-dimensional manifold (docs/manifold.md).

- :mod:`.siamese`: pair sampling, the embedding and siamese nets, training, embedding;
- :mod:`.manifold`: pose neighbours and the manifold quality metrics, the PCA baseline;
- :mod:`.plot`: 3-D scatter plots of embeddings (matplotlib, optional).

Its data set is :mod:`ember.data.pose`; its command is ``ember manifold`` (:mod:`ember.cli.manifold`).
"""

from .siamese import ARCHS, PairSampler, embed, embedding_net, siamese_feval, siamese_net, standardize, train_drlim

__all__ = ["PairSampler", "siamese_net", "siamese_feval", "embedding_net", "standardize", "embed", "train_drlim", "ARCHS"]
