"""reslab: deep residual learning for image recognition, on PyTorch."""

__version__ = "0.1.0"

from .errors import ReslabError
from .models import create_model, list_models, model_entry

__all__ = ["ReslabError", "create_model", "list_models", "model_entry", "__version__"]
