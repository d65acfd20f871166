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
