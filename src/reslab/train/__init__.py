"""The training engine: `fit(config) -> History`, recipes, exact resume, AMP, EMA, DDP, evaluation.

    from reslab.train import fit, load_config
    history = fit(load_config("cifar_quick", ["data.path=/tmp/cifar10"]))
"""

from .config import TrainConfig, list_recipes, load_config
from .engine import History, NonFiniteLossError, fit

__all__ = ["History", "NonFiniteLossError", "TrainConfig", "fit", "list_recipes", "load_config"]
