"""Load weights into a zoo model: a named tag, or a local .pth / .pt / .safetensors checkpoint.

    from reslab.models import create_model
    model = create_model("resnet50", weights="resnet50-11ad3fa6.pth")     # a torchvision checkpoint
    model = create_model("resnet50", num_classes=2, weights="resnet50-11ad3fa6.pth")  # fine-tuning

A checkpoint may be a plain state dict, or a dict holding one under "state_dict", "model" or
"model_state_dict" (training checkpoints); `module.` (DataParallel / DDP) and `_orig_mod.`
(torch.compile) prefixes are stripped, and so is a wrapper prefix shared by every key (Lightning's
`model.`) when nothing fits without it. Pickles are read with `weights_only=True`, so a checkpoint
cannot run code. When only the classifier differs in its number of classes, the backbone is loaded,
the classifier re-initialised and a warning says so. A model family may recognise other layouts of
its checkpoints through an `adapt_checkpoint(state, source) -> (state, finish)` method: ViTs
interpolate position embeddings made for another image size; CIFAR ResNets read the checkpoints of
akamaster/pytorch_resnet_cifar10 (`linear.*` head, channels padded on both sides). Anything else that does not fit is one
`ReslabError` naming the file and the first offending keys; the model is left untouched.
"""

from __future__ import annotations

import logging
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import ReslabError

log = logging.getLogger(__name__)

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".th", ".safetensors", ".bin", ".ckpt")
NESTED_KEYS = ("state_dict", "model", "model_state_dict")  # where training checkpoints keep the weights
PREFIXES = ("module.", "_orig_mod.")
SHOW = 3  # keys quoted in an error message


@dataclass(frozen=True)
class LoadReport:
    source: str  # the tag or the file path
    loaded: int  # tensors copied into the model
    reinitialized: tuple[str, ...] = ()  # head modules left freshly initialised (fine-tuning)

    def __str__(self) -> str:
        head = f"; re-initialised {', '.join(self.reinitialized)}" if self.reinitialized else ""
        return f"loaded {self.loaded} tensors from {self.source}{head}"


def load_weights(model: nn.Module, source: str | Path, entry=None) -> LoadReport:
    """Copy the weights of `source` into `model` (in place) and report what was loaded.

    source: a tag of `entry.pretrained` (e.g. "imagenet") or a path to a checkpoint file.
    entry: the model's `ModelEntry`, for its tags and its name in messages.
    """
    name = getattr(entry, "name", None) or getattr(model, "model_name", type(model).__name__)
    tags = dict(getattr(entry, "pretrained", {}) or {})
    source_str = str(source)
    if not isinstance(source, Path) and source_str in tags:
        state = _as_state_dict(tags[source_str](), source_str)
    elif isinstance(source, Path) or _looks_like_path(source_str):
        state = read_checkpoint(Path(source_str).expanduser())
    else:
        known = f"(its tags: {', '.join(sorted(tags))}); pass one of those," if tags else "(reslab ships none for it); pass"
        raise ReslabError(
            f"model '{name}' has no pretrained weights named '{source_str}' {known} the path of a "
            ".pth/.pt/.safetensors checkpoint (torchvision's load as they are), or 'none' for random initialisation"
        )
    return load_state_dict_into(model, state, source_str, name)


def _looks_like_path(source: str) -> bool:
    return source.lower().endswith(CHECKPOINT_SUFFIXES) or "/" in source or "\\" in source or Path(source).exists()


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The state dict in a checkpoint file, prefixes stripped; ReslabError if it is not one."""
    if path.is_dir():
        if (path / "model.safetensors").is_file():  # a run folder: its exported weights
            path = path / "model.safetensors"
        else:
            raise ReslabError(f"{path} is a folder; pass the checkpoint file inside it (.pth, .pt or .safetensors)")
    if not path.is_file():
        raise ReslabError(f"checkpoint file {path} does not exist; check the path")
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch, zipfile, pickle and safetensors each raise their own
        reason, fix = why_unloadable(path, e)
        raise ReslabError(f"{path} is not a weights file that loads safely: {reason}; {fix}") from None
    return _as_state_dict(obj, str(path))


def why_unloadable(path: Path, error: Exception) -> tuple[str, str]:
    """(why `path` did not load, what to do) for an exception of torch.load or safetensors."""
    text = str(error)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:  # the safe unpickler met a reference to a Python callable or class
        return (f"it holds Python objects ({found.group(1)}) besides tensors, and unpickling them could run code "
                "(a malicious file, or a whole model object rather than its weights), so it was not loaded",
                "re-save only the weights, torch.save(model.state_dict(), path), or use .safetensors")
    head = _head(path)
    if not head:
        return "the file is empty", "download or save it again"
    if isinstance(error, pickle.UnpicklingError):
        if _is_text(head):
            return "it is text, not a checkpoint (an error page saved under this name?)", "download it again"
        operand = re.search(r"Unsupported operand (\d+)", text)
        what = f" (pickle opcode {operand.group(1)})" if operand else ""
        return (f"its pickle uses instructions{what} that a PyTorch weights file never holds (a plain Python pickle "
                "or another program's format), so it was not loaded, as such a pickle could run code",
                "save the weights with torch.save(model.state_dict(), path) or as .safetensors")
    if type(error).__name__ == "SafetensorError":
        return f"its safetensors data are truncated or damaged ({text.strip().splitlines()[0]})", "download or save it again"
    if isinstance(error, (zipfile.BadZipFile, EOFError)) or "zip archive" in text or "central directory" in text:
        return "it is truncated or damaged (its archive ends early)", "download or save it again"
    first = text.strip().splitlines()[0][:120] if text.strip() else type(error).__name__
    return f"it is damaged or in another format ({first})", "download or save it again (torch.save or .safetensors)"


def _head(path: Path, n: int = 64) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError:
        return b""


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c >= 32 or c in b"\t\r\n" for c in head)


def _as_state_dict(obj, source: str) -> dict[str, torch.Tensor]:
    for key in NESTED_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ReslabError(
            f"{source} holds no state dict (expected a dict of tensors, or one under {', '.join(NESTED_KEYS)}); "
            f"save the weights with torch.save(model.state_dict(), path)"
        )
    return {_strip_prefixes(k): v for k, v in obj.items()}


def _strip_prefixes(key: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for prefix in PREFIXES:
            if key.startswith(prefix):
                key, stripped = key[len(prefix) :], True
    return key


def _strip_wrapper_prefix(state: dict, expected: dict, source: str) -> dict:
    """Unwrap a model saved inside another module ("model." from Lightning, "0." from nn.Sequential).

    Only when no key fits as it is, every key shares the first name, and without it some key fits.
    """
    if any(k in expected for k in state):
        return state
    first_names = {k.split(".", 1)[0] for k in state}
    if len(first_names) != 1 or not all("." in k for k in state):
        return state
    (prefix,) = first_names
    unwrapped = {k.split(".", 1)[1]: v for k, v in state.items()}
    if not any(k in expected for k in unwrapped):
        return state
    log.info("%s: stripped the wrapper prefix '%s.' from its keys", source, prefix)
    return unwrapped


def _head_modules(model: nn.Module) -> dict[str, nn.Linear]:
    """Classifier layers, by module path: the model's classifier and any Linear of the same size (aux heads)."""
    get_classifier = getattr(model, "get_classifier", None)
    classifier = get_classifier() if get_classifier else None
    if not isinstance(classifier, nn.Linear):
        return {}
    return {
        path: m
        for path, m in model.named_modules()
        if isinstance(m, nn.Linear) and m.out_features == classifier.out_features
    }


def load_state_dict_into(model: nn.Module, state: dict[str, torch.Tensor], source: str, name: str) -> LoadReport:
    """Load `state` into `model`: exact fit, or a fit up to the classifier size (then re-init the head)."""
    expected = model.state_dict()
    state = _strip_wrapper_prefix(state, expected, source)
    # a family may recognise another layout of its checkpoints (renamed keys, another image size);
    # what it implies for the model (an option to set) is applied only once the load succeeds
    adapt = getattr(model, "adapt_checkpoint", None)
    finish = None
    if adapt is not None:
        state, finish = adapt(dict(state), source)
    # BatchNorm fills num_batches_tracked itself when old checkpoints lack it
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    mismatched = [k for k in state if k in expected and state[k].shape != expected[k].shape]

    heads = _head_modules(model)
    # a head whose only difference is its number of classes: fine-tuning, not a mistake
    reinit = sorted(
        {
            k.rsplit(".", 1)[0]
            for k in mismatched
            if k.rsplit(".", 1)[0] in heads and state[k].shape[1:] == expected[k].shape[1:]
        }
    )
    body_mismatched = [k for k in mismatched if k.rsplit(".", 1)[0] not in reinit]
    # a backbone saved without its classifier (a self-supervised run's export): every key of a
    # head missing and nothing else; the head keeps its fresh initialisation
    headless = sorted({k.rsplit(".", 1)[0] for k in missing if k.rsplit(".", 1)[0] in heads})
    if headless and all(k.rsplit(".", 1)[0] in headless for k in missing):
        missing = []
    else:
        headless = []
    if missing or unexpected or body_mismatched:
        problems = _describe(missing, unexpected, body_mismatched, state, expected)
        raise ReslabError(
            f"{source} does not fit model '{name}': {problems}; "
            f"load it into the architecture (and options) it was saved from"
        )

    to_load = {k: v for k, v in state.items() if k.rsplit(".", 1)[0] not in reinit}
    model.load_state_dict(to_load, strict=False)
    if finish is not None:
        finish()
    for path in reinit:
        module = heads[path]
        module.reset_parameters()
        file_classes = state[f"{path}.weight"].shape[0]
        log.warning(
            "%s has a %d-class '%s'; model '%s' has %d classes: "
            "kept the backbone and re-initialised '%s' for fine-tuning",
            source, file_classes, path, name, module.out_features, path,
        )
    for path in headless:
        log.warning("%s has no '%s' (a backbone without classifier, e.g. self-supervised): "
                    "loaded the backbone; '%s' starts from its random initialisation", source, path, path)
    report = LoadReport(source=source, loaded=len(to_load), reinitialized=tuple(reinit + headless))
    log.info("%s: %s", name, report)
    return report


def _describe(missing, unexpected, mismatched, state, expected) -> str:
    def first(keys):
        more = f" and {len(keys) - SHOW} more" if len(keys) > SHOW else ""
        return ", ".join(keys[:SHOW]) + more

    def count(keys, what):
        return f"{len(keys)} {what}{'s' if len(keys) > 1 else ''}"

    parts = []
    if missing:
        parts.append(f"{count(missing, 'missing key')} ({first(missing)})")
    if unexpected:
        parts.append(f"{count(unexpected, 'unexpected key')} ({first(unexpected)})")
    if mismatched:
        shapes = [f"{k} {tuple(state[k].shape)} in file vs {tuple(expected[k].shape)} in model" for k in mismatched]
        parts.append(f"{count(mismatched, 'mismatched shape')} ({first(shapes)})")
    return "; ".join(parts)
