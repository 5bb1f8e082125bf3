"""Run directories: creation, meta.json, the final safetensors export, and loading a trained model back."""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path

import torch

from ..errors import ReslabError
from ..fileio import atomic_save_safetensors, atomic_write_text
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


def preprocess_for(config: dict, mean, std) -> EvalPreprocess:
    data = config.get("data", {})
    size = int(data.get("image_size", 224))
    channels = int(data.get("channels", 3))
    mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    if len(mean) == 1 and channels == 3:
        mean, std = mean * 3, std * 3
    return EvalPreprocess(
        crop=size, resize=int(data.get("eval_resize") or size), mean=mean, std=std, channels=channels
    )


def export_safetensors(path: Path, model: torch.nn.Module, config: dict, classes: list[str], preprocess: EvalPreprocess) -> None:
    metadata = {
        "config": json.dumps(config),
        "classes": json.dumps(list(classes)),
        "model": config["model"]["name"],
        "preprocess": json.dumps(preprocess.as_dict()),
    }
    atomic_save_safetensors(model.state_dict(), path, metadata=metadata)


def is_self_supervised(config: dict) -> bool:
    """Whether a run's resolved config trained a self-supervised backbone (no classifier)."""
    return bool(config.get("ssl", {}).get("method"))


def no_classifier_error(run, what: str) -> ReslabError:
    """The one message for asking a self-supervised backbone for class predictions."""
    return ReslabError(
        f"{run} is a self-supervised backbone without a classifier, so it cannot {what}; use its features "
        f"(`reslab embed --run {run}`, `reslab eval-ssl {run} --data LABELLED`), or fine-tune it into a classifier "
        f"(`reslab train RECIPE --data LABELLED --set model.weights={run}`)"
    )


def load_run_model(path: str | Path, device: str | torch.device = "cpu", which: str = "last"):
    """A trained model from a run directory, a `.pt` checkpoint or a `model.safetensors`.

    Returns (model in eval mode, config dict, classes, EvalPreprocess matching the run's data).
    A self-supervised run gives its backbone without classifier (`model(x)` is the pooled
    features) and no classes.
    For a run directory: model.safetensors when present, else checkpoints/<which>.pt
    (which = last | best | best_ema).
    """
    from ..models import create_model

    path = Path(path)
    if path.is_dir():
        candidates = [path / "model.safetensors"] if which == "last" else []
        candidates.append(path / "checkpoints" / f"{which}.pt")
        found = [c for c in candidates if c.is_file()]
        if not found:
            raise ReslabError(f"{path} holds neither model.safetensors nor checkpoints/{which}.pt; is it a reslab run directory?")
        path = found[0]
    if not path.is_file():
        raise ReslabError(f"{path} does not exist; give a run directory, a .pt checkpoint or a model.safetensors")
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
            state = load_file(str(path))
        except Exception as e:
            raise ReslabError(f"{path} cannot be read as safetensors ({type(e).__name__}); the file is damaged") from None
        if "config" not in meta:
            raise ReslabError(f"{path} has no reslab metadata (config, classes); use `reslab predict --weights` for plain weights")
        config, classes = json.loads(meta["config"]), json.loads(meta["classes"])
        pre = json.loads(meta.get("preprocess", "{}"))
        stats = (pre.get("mean", ()), pre.get("std", ()))
    else:
        from .checkpoint import load_checkpoint

        ckpt = load_checkpoint(path)
        config, classes, state = ckpt["config"], ckpt["classes"], ckpt["model"]
        stats = (ckpt["data_mean"], ckpt["data_std"])
    m = config["model"]
    if is_self_supervised(config):
        # a backbone without classifier: its pooled features are what it learnt; checkpoints hold the
        # whole training module (projection heads, teacher), of which only `backbone.*` is kept here
        from ..models.features import remove_classifier

        model = remove_classifier(create_model(m["name"], **m.get("options", {})))
        if any(k.startswith("backbone.") for k in state):
            state = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
        classes = []
    else:
        model = create_model(m["name"], num_classes=m.get("num_classes") or len(classes), **m.get("options", {}))
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ReslabError(f"weights in {path} do not fit model '{m['name']}' ({str(e).splitlines()[0]})") from None
    model.to(device).eval()
    return model, config, list(classes), preprocess_for(config, *stats)
