"""Run directories: creation, meta.json, the final safetensors export, and loading a trained model back."""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path

import torch

from ..errors import ReslabError
from ..fileio import atomic_save_safetensors, atomic_write_text
from ..inference.runs import is_self_supervised, load_run_model, no_classifier_error, preprocess_for  # noqa: F401  (re-exported: the loaders live below train/)
from ..preprocess import EvalPreprocess


def run_folder(path: str | Path) -> Path:
    """The run folder a user's path stands for: the folder itself, the run above `checkpoints/X.pt`,
    or the folder holding a run's file (`model.safetensors`, `config.toml`)."""
    path = Path(path)
    if path.is_dir():
        return path
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def new_run_dir(parent: str | Path, name: str, model_name: str) -> Path:
    """A fresh run directory; an existing non-empty one is never reused (nothing the user had is overwritten)."""
    parent = Path(parent)
    if not name:
        name = f"{model_name}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    path = parent / name
    if path.exists() and any(path.iterdir()):
        raise ReslabError(f"run directory {path} already exists; choose another --name, or --resume {path} to continue it")
    path.mkdir(parents=True, exist_ok=True)
    (path / "checkpoints").mkdir(exist_ok=True)
    return path


def write_meta(run_dir: Path, meta: dict) -> None:
    atomic_write_text(run_dir / "meta.json", json.dumps(meta, indent=2, default=str) + "\n")


def base_meta(seed: int, world_size: int, device: torch.device) -> dict:
    """meta.json's start: code version and machine (reslab.provenance), seed, device, world size."""
    from ..provenance import code_version, machine

    return {
        **code_version(),
        **machine(),
        "seed": seed,
        "device": str(device),
        "world_size": world_size,
        "start_time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def export_safetensors(path: Path, model: torch.nn.Module, config: dict, classes: list[str], preprocess: EvalPreprocess) -> None:
    metadata = {
        "config": json.dumps(config),
        "classes": json.dumps(list(classes)),
        "model": config["model"]["name"],
        "preprocess": json.dumps(preprocess.as_dict()),
    }
    atomic_save_safetensors(model.state_dict(), path, metadata=metadata)
