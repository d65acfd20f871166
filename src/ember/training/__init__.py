"""The training run: data set and options (:mod:`.train`), the loop (:mod:`.loop`), run state
and bit-exact checkpoints (:mod:`.run_state`, :mod:`.checkpoint`) and the progress bar.

    from ember.training import TrainOptions, fit, load_dataset
    history = fit(model, nn.ClassNLLCriterion(), load_dataset((784,)), TrainOptions(epochs=2))

Within the package ``loop`` imports ``train``, ``run_state``, ``checkpoint`` and
``progress``; nothing imports ``loop`` back.
"""

from .loop import TrainingRun, fit
from .train import (
    DEFAULT_LR, TORCH_LR, Dataset, TrainOptions, evaluate, load_dataset, make_dataset, make_feval, model_metadata,
    on_model_backend,
)  # fmt: skip

__all__ = [
    "Dataset", "TrainOptions", "TrainingRun", "fit", "load_dataset", "make_dataset", "evaluate", "make_feval",
    "model_metadata", "on_model_backend", "DEFAULT_LR", "TORCH_LR",
]  # fmt: skip
