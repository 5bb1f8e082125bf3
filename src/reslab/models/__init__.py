"""The model zoo: torchvision-compatible ResNets, their plain twins, CIFAR ResNets and classic CNNs."""

from .registry import ModelEntry, create_model, list_models, model_entry, register_model

__all__ = ["ModelEntry", "create_model", "list_models", "model_entry", "register_model"]
