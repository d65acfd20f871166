"""ember.nn: modules, containers and criteria (Torch7 names, snake_case methods).

This file lists exactly what is public; each name lives in a small category file.
"""

from .activation import (
    Abs,
    HardShrink,
    HardTanh,
    LogSoftMax,
    LogSumExp,
    ReLU,
    Sigmoid,
    SoftMax,
    SoftPlus,
    SoftShrink,
    Tanh,
    Threshold,
)
from .containers import Container, Sequential
from .criterion import (
    AbsCriterion,
    BCECriterion,
    ClassNLLCriterion,
    CrossEntropyCriterion,
    DistKLDivCriterion,
    MarginCriterion,
    MSECriterion,
    MultiMarginCriterion,
    SmoothL1Criterion,
)
from .dropout import Dropout
from .elementwise import AddConstant, Exp, Log, MulConstant, Power, Sqrt, Square
from .init import manual_seed
from .linear import Add, CMul, Linear, Mul
from .module import Criterion, Module
from .reduction import Max, Mean, Min, Sum
from .shape import Identity, Reshape, View

# tables, graphs, distances and pair criteria (issue 3)
from .criterion_pairs import (
    ContrastiveCriterion,
    CosineEmbeddingCriterion,
    HingeEmbeddingCriterion,
    L1HingeEmbeddingCriterion,
    MarginRankingCriterion,
)
from .criterion_tables import MultiCriterion, ParallelCriterion
from .distance import Cosine, CosineDistance, DotProduct, Euclidean, PairwiseDistance, SquaredEuclidean
from .graph import Graph, Input, Node
from .table_containers import Concat, ConcatTable, MapTable, Parallel, ParallelTable
from .table_layout import FlattenTable, JoinTable, NarrowTable, Replicate, SelectTable, SplitTable
from .table_ops import CAddTable, CDivTable, CMaxTable, CMinTable, CMulTable, CSubTable, MixtureTable, Switch
# convolutional networks: filter banks, pooling, normalization, map non-linearities
from . import conn_tables as tables
from .batchnorm import BatchNormalization, SpatialBatchNormalization
from .convolution import SpatialConvolution, SpatialDilatedConvolution
from .convolution_full import SpatialFullConvolution
from .convolution_map import SpatialConvolutionMap
from .normalization import SpatialContrastiveNormalization, SpatialDivisiveNormalization, SpatialSubtractiveNormalization
from .padding import SpatialZeroPadding
from .pooling import SpatialAveragePooling, SpatialMaxPooling
from .pooling_adaptive import SpatialAdaptiveAveragePooling, SpatialAdaptiveMaxPooling
from .pooling_smooth import SpatialLogSumExpPooling, SpatialLPPooling
from .spatial_activation import SpatialDropout, SpatialLogSoftMax, SpatialMaxout, SpatialSoftMax, SpatialWTA
from .temporal import TemporalConvolution, TemporalMaxPooling

__all__ = [
    # base classes
    "Module", "Criterion", "Container", "manual_seed",
    # containers
    "Sequential",
    # layers
    "Identity", "Linear", "Add", "Mul", "CMul", "Reshape", "View", "Dropout",
    # transfer functions
    "Threshold", "ReLU", "Tanh", "Sigmoid", "HardTanh", "SoftPlus", "SoftShrink", "HardShrink",
    "Abs", "SoftMax", "LogSoftMax", "LogSumExp",
    # elementwise math and reductions
    "Square", "Sqrt", "Power", "Exp", "Log", "AddConstant", "MulConstant",
    "Sum", "Mean", "Max", "Min",
    # criteria
    "ClassNLLCriterion", "CrossEntropyCriterion", "MSECriterion", "AbsCriterion", "BCECriterion",
    "SmoothL1Criterion", "MarginCriterion", "MultiMarginCriterion", "DistKLDivCriterion",
    # tables, graphs, distances and pair criteria (issue 3)
    "ConcatTable", "ParallelTable", "MapTable", "Concat", "Parallel", "Graph", "Input", "Node",
    "CAddTable", "CSubTable", "CMulTable", "CDivTable", "CMaxTable", "CMinTable", "Switch", "MixtureTable",
    "JoinTable", "SplitTable", "SelectTable", "NarrowTable", "FlattenTable", "Replicate",
    "PairwiseDistance", "DotProduct", "CosineDistance", "Cosine", "Euclidean", "SquaredEuclidean",
    "HingeEmbeddingCriterion", "L1HingeEmbeddingCriterion", "CosineEmbeddingCriterion",
    "MarginRankingCriterion", "ContrastiveCriterion", "ParallelCriterion", "MultiCriterion",
    # convolutional networks: filter banks, pooling, normalization, map non-linearities
    "tables", "SpatialConvolution", "SpatialDilatedConvolution", "SpatialFullConvolution", "SpatialConvolutionMap",
    "TemporalConvolution", "SpatialZeroPadding",
    "SpatialMaxPooling", "SpatialAveragePooling", "SpatialLPPooling", "SpatialLogSumExpPooling",
    "TemporalMaxPooling", "SpatialAdaptiveMaxPooling", "SpatialAdaptiveAveragePooling",
    "SpatialSubtractiveNormalization", "SpatialDivisiveNormalization", "SpatialContrastiveNormalization",
    "BatchNormalization", "SpatialBatchNormalization",
    "SpatialSoftMax", "SpatialLogSoftMax", "SpatialWTA", "SpatialMaxout", "SpatialDropout",
]  # fmt: skip

# recurrent networks (unfolding in time, cells, fused layers, sequences, embeddings)
from .cells import GRUCell, LSTMCell, RNNCell  # noqa: E402
from .lookup import LookupTable  # noqa: E402
from .recurrent import Recurrent, pad_sequences, set_mask  # noqa: E402
from .rnn import GRU, LSTM, RNN  # noqa: E402
from .sequence import Bidirectional, LastStep, Sequencer, SequencerCriterion  # noqa: E402

__all__ += [
    "Recurrent", "RNNCell", "LSTMCell", "GRUCell", "RNN", "LSTM", "GRU", "Bidirectional", "Sequencer",
    "LastStep", "LookupTable", "SequencerCriterion", "set_mask", "pad_sequences",
]  # fmt: skip
