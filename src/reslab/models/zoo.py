"""Imports every model family so that their builders register themselves."""

import importlib

from ..errors import ReslabError

# One module per family; a module not written yet is skipped so the rest of the zoo still works.
FAMILY_MODULES = [
    "resnet",
    "cifar_resnet",
    "preact_resnet",
    "alexnet",
    "vgg",
    "googlenet",
    "mobilenetv2",
    "efficientnet",
]

for _name in FAMILY_MODULES:
    try:
        importlib.import_module(f"{__package__}.{_name}")
    except ModuleNotFoundError as e:
        if e.name != f"{__package__}.{_name}":
            raise
