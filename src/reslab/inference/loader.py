"""One loader for every command: a zoo name, a training run or an exported file -> a ready network.

    from reslab.inference import load

    m = load("resnet50", weights="resnet50-11ad3fa6.pth")   # a zoo name (+ a weights tag or file)
    m = load("runs/cifar-resnet20")                        # a run folder, a .pt checkpoint, a model.safetensors
    m = load("lite0.onnx")                                 # a file written by `reslab export`
    m.network, m.preprocess, m.classes, m.embedding_dim

A registered model name wins over a folder of the same name in the current directory; write
`./resnet18` for the folder. Nothing here imports torch until a model is actually loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ReslabError
from ..preprocess import EvalPreprocess

RUN_SUFFIXES = (".pt", ".pth", ".safetensors")
EXPORTED_SUFFIXES = (".onnx",)
ONNX_METADATA_KEY = "reslab"  # the ONNX metadata_props entry that `reslab export` writes


@dataclass
class LoadedModel:
    """A network and everything needed to feed it and read its outputs."""

    network: Any  # torch nn.Module in eval mode; for an exported file, an `ExportedFile`
    preprocess: EvalPreprocess
    classes: list[str] | None  # one name per logit; None when the head means nothing (random weights)
    embedding_dim: int  # width of the pooled features (forward_head(..., pre_logits=True))
    name: str  # the architecture, e.g. "resnet50"
    kind: str  # "zoo" | "run" | "exported"
    source: str  # for people: "resnet50, weights imagenet", "run runs/x", "exported lite0.onnx"
    weights: str | None = None  # zoo: the tag or file given
    run: str | None = None  # run: the path given
    config: dict | None = None  # run: its training config
    _sha256: str | None = field(default=None, repr=False)

    @property
    def is_torch(self) -> bool:
        return self.kind != "exported"

    @property
    def weights_sha256(self) -> str:
        """A hash of the weights themselves (names, shapes, bytes), whatever file they came from."""
        if self._sha256 is None:
            self._sha256 = self.network.sha256 if not self.is_torch else state_dict_sha256(self.network.state_dict())
        return self._sha256

    def torch_network(self, purpose: str):
        """The nn.Module, or a clear error for an exported file (e.g. purpose "feature maps need")."""
        if not self.is_torch:
            raise ReslabError(
                f"{purpose} a PyTorch network, and {self.source} is an exported file; "
                f"give the zoo name or the run folder it was exported from"
            )
        return self.network


@dataclass(frozen=True)
class ExportedFile:
    """An ONNX file written by `reslab export`, with the metadata it carries."""

    path: Path
    sha256: str
    metadata: dict


def load(spec: str | os.PathLike, weights: str | None = None, *, device="cpu", which: str = "last") -> LoadedModel:
    """The network named by `spec`: a zoo name, a run folder / checkpoint, or an exported .onnx file.

    weights: zoo models only; a tag such as "imagenet" or a checkpoint file (None: random weights).
    which: run folders only; last | best | best_ema (checkpoints/<which>.pt).
    """
    text = str(spec)
    path = Path(text).expanduser()
    if not _is_zoo_name(text) and path.exists():
        if weights is not None:
            raise ReslabError(f"{text} carries its own weights; drop --weights (it applies to zoo model names)")
        if path.suffix.lower() in EXPORTED_SUFFIXES:
            return _load_exported(path)
        return _load_run(path, device, which)
    if os.sep in text or "/" in text or text.lower().endswith(RUN_SUFFIXES + EXPORTED_SUFFIXES):
        raise ReslabError(f"{text} does not exist; give a run folder, a checkpoint, an exported .onnx, or a model name from `reslab models`")
    return _load_zoo(text, weights, device)


def default_weights(name: str) -> str | None:
    """The zoo model's "imagenet" tag when it has one, else None (random weights)."""
    from ..models import model_entry

    return "imagenet" if "imagenet" in model_entry(name).pretrained else None


def state_dict_sha256(state_dict: dict) -> str:
    """A hash of the weights themselves (names, shapes, bytes), whatever file they came from."""
    import torch

    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(-1).view(dtype=torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _is_zoo_name(text: str) -> bool:
    from ..models import list_models

    return text in list_models()


def _load_zoo(name: str, weights: str | None, device) -> LoadedModel:
    from ..models import create_model, model_entry

    model_entry(name)  # an unknown name raises with close matches
    net = create_model(name, weights=weights).to(device).eval()
    outputs = net.get_classifier().out_features
    classes = None
    if weights is not None:
        # ImageNet heads get their names; any other trained head is numbered
        from ..labels import imagenet_classes

        classes = imagenet_classes() if outputs == 1000 else [str(i) for i in range(outputs)]
    source = f"{name}, weights {weights}" if weights is not None else f"{name}, random weights"
    return LoadedModel(net, EvalPreprocess.for_model(name), classes, int(net.num_features), name, "zoo", source, weights=weights)


def _load_run(path: Path, device, which: str) -> LoadedModel:
    from .runs import load_run_model

    net, config, classes, preprocess = load_run_model(path, device=device, which=which)
    name = getattr(net, "model_name", None) or config["model"]["name"]
    # a self-supervised backbone has no classifier: its "logits" are its features, and no classes
    return LoadedModel(net, preprocess, list(classes) or None, int(net.num_features), name, "run", f"run {path}", run=str(path), config=config)


def _load_exported(path: Path) -> LoadedModel:
    meta = read_onnx_metadata(path)
    from .cache import file_sha256

    exported = ExportedFile(path, file_sha256(path), meta)
    preprocess = EvalPreprocess(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["preprocess"].items()})
    return LoadedModel(exported, preprocess, meta.get("classes"), int(meta["embedding_dim"]), meta["name"], "exported",
                       f"exported {path} ({meta.get('source', meta['name'])})", _sha256=exported.sha256)


def read_onnx_metadata(path: Path) -> dict:
    """The reslab metadata of an ONNX file from `reslab export`; a clear error for any other file."""
    try:
        import onnx
    except ImportError:
        raise ReslabError(f"reading {path} needs the onnx package; install the extra: pip install 'reslab[onnx]'") from None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # a protobuf decode error on a damaged or foreign file
        raise ReslabError(f"{path} is not a readable ONNX file ({type(e).__name__}); export it again with `reslab export`") from None
    props = {p.key: p.value for p in model.metadata_props}
    if ONNX_METADATA_KEY not in props:
        raise ReslabError(
            f"{path} was not written by `reslab export` (it lacks the preprocessing and class names); "
            "export the model with `reslab export MODEL --out FILE.onnx`"
        )
    try:
        meta = json.loads(props[ONNX_METADATA_KEY])
        missing = [k for k in ("name", "preprocess", "embedding_dim") if k not in meta]
    except (json.JSONDecodeError, TypeError):
        missing = ["valid JSON"]
    if missing:
        raise ReslabError(f"the reslab metadata in {path} is damaged (no {', '.join(missing)}); export the model again")
    return meta
