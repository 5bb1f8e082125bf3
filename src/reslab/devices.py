"""The one device policy: `auto` is the first CUDA GPU when there is one, else the CPU.

Every command's `--device` and the training config's `train.device` go through `resolve_device`,
so `auto`, `cpu`, `cuda` and `cuda:N` mean the same everywhere and a GPU that is not there is one
clear error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ReslabError

if TYPE_CHECKING:
    import torch


def resolve_device(name: "str | torch.device | None" = "auto", setting: str = "--device") -> "torch.device":
    """The torch.device `name` stands for; `setting` names where it came from in error messages."""
    import torch

    if isinstance(name, torch.device):
        return name
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ReslabError(f"{setting} '{name}' is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ReslabError(f"{setting} '{name}' needs a CUDA GPU but none is available; use auto or cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ReslabError(
                f"{setting} '{name}': this machine has {torch.cuda.device_count()} CUDA GPU(s), numbered from 0; pick one of them"
            )
    elif device.type not in ("cpu", "mps"):
        raise ReslabError(f"{setting} '{name}' is not supported; use auto, cpu, cuda or cuda:N")
    return device
