"""Reading what `reslab train` leaves behind: a run folder, a `.pt` checkpoint, a `model.safetensors`.

This lives below `train/` so that every consumer of a trained network (predict, eval, embed,
search, report, viz) loads it the same way without importing the training engine.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ReslabError
from ..preprocess import EvalPreprocess


def preprocess_for(config: dict, mean, std) -> EvalPreprocess:
    """The evaluation preprocessing of a run: its image size and its own normalisation."""
    data = config.get("data", {})
    size = int(data.get("image_size", 224))
    channels = int(data.get("channels", 3))
    mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    if len(mean) == 1 and channels == 3:
        mean, std = mean * 3, std * 3
    return EvalPreprocess(crop=size, resize=int(data.get("eval_resize") or size), mean=mean, std=std, channels=channels)


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


def read_training_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """A training checkpoint (a run folder means its checkpoints/last.pt), read with weights_only=True."""
    import torch

    path = Path(path)
    if path.is_dir():
        candidate = path / "checkpoints" / "last.pt"
        if not candidate.is_file():
            raise ReslabError(f"{path} holds no checkpoints/last.pt; give a run directory that has trained, or a .pt file")
        path = candidate
    if not path.is_file():
        raise ReslabError(f"checkpoint {path} does not exist; give a run directory or a .pt file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated, foreign or malicious: say which
        from ..models.weights import why_unloadable

        reason, fix = why_unloadable(path, e)
        raise ReslabError(f"checkpoint {path} cannot be loaded: {reason}; {fix}") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise ReslabError(f"{path} is not a reslab training checkpoint (no model/config); use a last.pt or best.pt")
    return state


def run_weights_file(path: str | Path, which: str = "last") -> Path:
    """The file holding a run's weights: model.safetensors when present, else checkpoints/<which>.pt."""
    path = Path(path)
    if path.is_dir():
        candidates = [path / "model.safetensors"] if which == "last" else []
        candidates.append(path / "checkpoints" / f"{which}.pt")
        found = [c for c in candidates if c.is_file()]
        if not found:
            raise ReslabError(f"{path} holds neither model.safetensors nor checkpoints/{which}.pt; is it a reslab run directory?")
        return found[0]
    if not path.is_file():
        raise ReslabError(f"{path} does not exist; give a run directory, a .pt checkpoint or a model.safetensors")
    return path


def load_run_model(path: str | Path, device="cpu", which: str = "last"):
    """A trained model from a run directory, a `.pt` checkpoint or a `model.safetensors`.

    Returns (model in eval mode, config dict, classes, EvalPreprocess matching the run's data).
    A self-supervised run gives its backbone without classifier (`model(x)` is the pooled
    features) and no classes.
    For a run directory: model.safetensors when present, else checkpoints/<which>.pt
    (which = last | best | best_ema).
    """
    from ..models import create_model

    path = run_weights_file(path, which)
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
        ckpt = read_training_checkpoint(path)
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
