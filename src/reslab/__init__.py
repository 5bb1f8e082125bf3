"""reslab: deep residual learning for image recognition, on PyTorch.

    from reslab import create_model
    net = create_model("resnet50", weights="imagenet")

The model functions are imported on first use, so that `import reslab` (and `reslab --help`)
does not pay for importing torch.
"""

__version__ = "0.1.0"

from .errors import ReslabError

__all__ = ["ReslabError", "create_model", "list_models", "model_entry", "__version__"]
_MODEL_API = ("create_model", "list_models", "model_entry")


def __getattr__(name: str):
    if name in _MODEL_API:
        from . import models

        return getattr(models, name)
    raise AttributeError(f"module 'reslab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
