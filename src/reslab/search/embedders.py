"""Embedders: one protocol for CNN features and classical descriptors (HOG, colour histograms, BoVW).

An embedder turns images into L2-normalised float32 rows. `preprocess` runs in decode worker
processes (so it must be picklable and cheap); `embed` runs in the main process on a batch of
preprocessed inputs. `manifest()` records everything needed to rebuild the same embedder, and an
index re-creates its embedder from that record, so a query is always embedded the way the
collection was.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Iterable, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from ..errors import ReslabError

log = logging.getLogger(__name__)

CLASSICAL_METHODS = ("hog", "hist", "sift", "orb")
HASH_METHODS = ("ahash", "dhash", "phash", "whash")  # reslab.features.hashes: binary index, Hamming distance
METHODS = ("cnn",) + CLASSICAL_METHODS + HASH_METHODS
# manifest keys that must agree for two embedders to produce comparable vectors
IDENTITY_KEYS = ("method", "model", "weights_sha256", "layer", "params")


@runtime_checkable
class Embedder(Protocol):
    method: str
    dim: int
    needs_fit: bool

    def preprocess(self, image: Image.Image): ...

    def embed(self, batch: list) -> np.ndarray: ...

    def fit(self, samples: Iterable[Image.Image]) -> None: ...

    def manifest(self) -> dict: ...

    @classmethod
    def from_manifest(cls, manifest: dict, index_dir: Path) -> "Embedder": ...


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def state_dict_sha256(state_dict: dict) -> str:
    """A hash of the weights themselves (names, shapes, bytes), whatever file they came from."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(-1).view(dtype=_byte_dtype()).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _byte_dtype():
    import torch

    return torch.uint8


class PixelPreprocess:
    """Resize the shorter side, centre-crop, return uint8 (H, W, C): cheap to pickle across processes.

    Normalisation happens later on the whole batch (on the GPU when there is one), a quarter of the
    bytes of a float tensor crossing the process boundary.
    """

    def __init__(self, crop: int, resize: int, interpolation: str):
        self.crop, self.resize, self.interpolation = crop, resize, interpolation

    def __call__(self, image: Image.Image) -> np.ndarray:
        from ..preprocess import center_crop, resize_shorter

        image = center_crop(resize_shorter(image.convert("RGB"), self.resize, self.interpolation), self.crop)
        return np.asarray(image, dtype=np.uint8)


class CnnEmbedder:
    """Pooled features of a zoo model or a trained run (or a chosen layer, global-average-pooled)."""

    method = "cnn"
    needs_fit = False

    def __init__(
        self,
        model: str = "efficientnet_lite0",
        weights: str | None = "imagenet",
        run: str | Path | None = None,
        layer: str | None = None,
        device: str | None = None,
        bf16: bool = False,
        channels_last: bool = False,
        onnx: bool = False,
        pool: str = "avg",
        gem_p: float = 3.0,
        scales=(1.0,),
        flip: bool = False,
        layers=(),
    ):
        import torch

        from .pooling import Pooling

        self.pooling = Pooling(pool, float(gem_p), tuple(scales), bool(flip), tuple(layers))
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.bf16, self.channels_last, self.use_onnx = bf16, channels_last, onnx
        self.run = str(run) if run is not None else None
        self.classes: list[str] | None = None
        if run is not None:
            from ..train.runs import load_run_model  # the training engineer's module; lazy on purpose

            net, config, classes, prep = load_run_model(run)
            self.model_name = getattr(net, "model_name", None) or getattr(config, "model", "run")
            self.weights = None
            self.classes = list(classes) if classes else None
        else:
            net, prep = _load_zoo_model(model, weights), None
            self.model_name, self.weights = model, weights
            if weights == "imagenet" and net.get_classifier().out_features == 1000:
                from ..labels import imagenet_classes

                self.classes = imagenet_classes()
        if prep is None:
            from ..preprocess import EvalPreprocess

            prep = EvalPreprocess.for_model(self.model_name)
        self.eval_preprocess = prep
        self.pixels = PixelPreprocess(prep.crop, prep.resize, prep.interpolation)
        self.min_size = prep.resize
        self.weights_sha256 = state_dict_sha256(net.state_dict())
        self.net = net.eval().to(self.device)
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        from ..models.features import feature_module_path

        self.layer = layer
        # a stage name of the model's feature_names (ResNet's "stem", a ViT's "block6") or a module path
        self.layer_path = feature_module_path(self.net, layer) if layer in getattr(self.net, "feature_names", ()) else layer
        if layer is not None:
            modules = dict(self.net.named_modules())
            if self.layer_path not in modules or layer == "":
                raise ReslabError(
                    f"model {self.model_name} has no layer '{layer}'; its stages are {', '.join(self.net.feature_names)}"
                )
        self.dim = self._output_dim()
        self._session = None

    # -- the protocol --------------------------------------------------------------------------
    def preprocess(self, image: Image.Image) -> np.ndarray:
        return self.pixels(image)

    def embed(self, batch: list) -> np.ndarray:
        x = self._to_input(batch)
        if self.use_onnx:
            return l2_normalize(self._onnx_session().run(None, {"images": x.cpu().numpy()})[0])
        return l2_normalize(self._forward_embedding(x).float().cpu().numpy())

    def fit(self, samples) -> None:  # nothing to learn: the network is the vocabulary
        return None

    def manifest(self) -> dict:
        return {
            "method": "cnn",
            "model": self.model_name,
            "weights": self.weights,
            "run": self.run,
            "weights_sha256": self.weights_sha256,
            "layer": self.layer,
            "preprocess": self.eval_preprocess.as_dict(),
            "params": self.pooling.as_params(),
            "dim": self.dim,
        }

    @classmethod
    def from_manifest(cls, manifest: dict, index_dir: Path, **runtime) -> "CnnEmbedder":
        from .pooling import Pooling

        pooling = Pooling.from_params(manifest.get("params") or {}).as_params()  # absent keys: how older indexes pooled
        emb = cls(model=manifest["model"], weights=manifest.get("weights"), run=manifest.get("run"), layer=manifest.get("layer"),
                  **pooling, **runtime)  # fmt: skip
        if emb.weights_sha256 != manifest.get("weights_sha256"):
            source = manifest.get("run") or manifest.get("weights")
            raise ReslabError(
                f"the weights of {manifest['model']} ({source}) have changed since the index {index_dir} was built; "
                "rebuild the index with `reslab embed`, or restore the original weights"
            )
        return emb

    # -- extras used by SearchIndex and the ONNX export ----------------------------------------
    def classify(self, image: Image.Image, top_k: int = 5) -> list[tuple[str, float]] | None:
        """Top-k classes of the network's own head, or None when there is no meaningful head."""
        import torch

        if self.classes is None:
            return None
        x = self._to_input([self.preprocess(image)])
        with torch.inference_mode():
            probs = torch.softmax(self.net(x).float(), dim=1)[0]
        p, i = probs.topk(min(top_k, probs.numel()))
        return [(self.classes[j], float(q)) for q, j in zip(p.tolist(), i.tolist())]

    def embedding_module(self):
        """An nn.Module mapping normalised images (B, 3, H, W) to unnormalised embeddings (B, dim)."""
        from torch import nn

        outer = self

        class EmbeddingHead(nn.Module):
            def __init__(self):
                super().__init__()
                self.net = outer.net

            def forward(self, x):
                return outer._features(self.net, x)

        return EmbeddingHead()

    def _output_dim(self) -> int:
        import torch

        if self.layer is None and self.pooling.is_plain:
            return int(self.net.num_features)
        crop = self.eval_preprocess.crop
        with torch.inference_mode():
            return int(self._features(self.net, torch.zeros(1, 3, crop, crop, device=self.device)).shape[1])

    def _features(self, net, x):
        import torch

        if self.layer is None:
            if self.pooling.is_plain:
                return net.forward_head(net.forward_features(x), pre_logits=True)
            from .pooling import descriptor

            return descriptor(net, x, self.pooling)
        captured = {}
        module = dict(net.named_modules())[self.layer_path]
        handle = module.register_forward_hook(lambda _m, _i, out: captured.setdefault("out", out))
        try:
            net.forward_features(x)
        finally:
            handle.remove()
        out = captured["out"]
        out = out[0] if isinstance(out, (tuple, list)) else out
        if out.dim() == 3:  # a transformer's tokens (B, N, D): their mean
            return out.mean(dim=1)
        return torch.flatten(out.mean(dim=(2, 3)) if out.dim() == 4 else out, 1)

    def _to_input(self, batch: list):
        import torch

        from ..preprocess import normalize

        x = torch.from_numpy(np.stack(batch))  # (B, H, W, C) uint8
        if self.device.type == "cuda":
            x = x.pin_memory().to(self.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        x = normalize(x, self.eval_preprocess.mean, self.eval_preprocess.std)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _forward_embedding(self, x):
        import torch

        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self._features(self.net, x)

    def _onnx_session(self):
        if self._session is None:
            from .onnx_export import cached_embedding_onnx, ort_session

            self._session = ort_session(cached_embedding_onnx(self))
        return self._session

    def __getstate__(self):
        # Decode workers need only the preprocessing: never pickle the network or an ORT session.
        return {"pixels": self.pixels, "min_size": self.min_size, "dim": self.dim}

    def __setstate__(self, state):
        self.__dict__.update(state)


def _load_zoo_model(name: str, weights: str | None):
    from ..models import create_model, model_entry

    try:
        return create_model(name, weights=weights)
    except ModuleNotFoundError as e:
        # reslab.models.weights (another engineer's module) not there yet: named tags still work
        if e.name != "reslab.models.weights":
            raise
    entry = model_entry(name)
    model = create_model(name)
    if weights is None:
        return model
    if weights not in entry.pretrained:
        raise ReslabError(f"model {name} has no weights named '{weights}'; available: {', '.join(entry.pretrained) or 'none'}")
    model.load_state_dict(entry.pretrained[weights]())
    return model


def make_embedder(method: str = "cnn", *, model: str = "efficientnet_lite0", weights: str | None = "imagenet", run=None, layer=None, **params) -> Embedder:
    """The embedder for `method`: "cnn" (a zoo model or a trained run) or a classical descriptor.

    params: runtime options for "cnn" (device, bf16, channels_last, onnx); the descriptor's
    options for classical methods (e.g. vocab_size=512 for sift/orb).
    """
    if method == "cnn":
        from .pooling import DEFAULT_PARAMS

        unknown = sorted(set(params) - {"pool", "gem_p", "scales", "flip", "layers", "device", "bf16", "channels_last", "onnx"})
        if unknown:
            raise ReslabError(f"the cnn embedder has no option {', '.join(unknown)}; its options are pool, gem_p, scales, flip, layers")
        return CnnEmbedder(model=model, weights=weights, run=run, layer=layer, **{**DEFAULT_PARAMS, **params})
    # runtime options of the CNN path mean nothing to classical descriptors and hashes
    params = {k: v for k, v in params.items() if k not in ("device", "bf16", "channels_last", "onnx")}
    if method in HASH_METHODS:
        from ..features.hashes import HashEmbedder

        unknown = sorted(set(params) - {"hash_size"})
        if unknown:
            raise ReslabError(f"the {method} hash has no option {', '.join(unknown)}; its only option is hash_size (bits = hash_size^2)")
        return HashEmbedder(method, **params)
    return _classical_module(method).make_classical_embedder(method, **params)


def embedder_from_manifest(manifest: dict, index_dir: Path, **runtime) -> Embedder:
    """Rebuild the embedder an index was made with (runtime: device, bf16, channels_last, onnx for CNNs)."""
    method = manifest.get("method")
    if method == "cnn":
        return CnnEmbedder.from_manifest(manifest, Path(index_dir), **runtime)
    if method in HASH_METHODS:
        from ..features.hashes import HashEmbedder

        return HashEmbedder.from_manifest(manifest, Path(index_dir))
    return _classical_module(method).classical_from_manifest(manifest, Path(index_dir))


def _classical_module(method: str):
    if method not in CLASSICAL_METHODS:
        raise ReslabError(f"unknown embedding method '{method}'; choose one of {', '.join(METHODS)}")
    try:
        from ..features import classical
    except ModuleNotFoundError as e:
        raise ReslabError(f"method '{method}' needs reslab.features.classical, which this installation lacks ({e})") from None
    return classical


def identity(manifest: dict) -> dict:
    """The part of a manifest that decides whether two embedders' vectors are comparable."""
    out = {k: manifest.get(k) for k in IDENTITY_KEYS}
    if manifest.get("method") == "cnn":  # older indexes record no pooling: they pooled the original way
        from .pooling import Pooling

        out["params"] = Pooling.from_params(manifest.get("params") or {}).as_params()
    return out


def describe(manifest: dict) -> str:
    """A short name for the embedder of a manifest: "cnn resnet50 (imagenet)", "orb (vocab 256)"."""
    if manifest.get("method") == "cnn":
        src = manifest.get("run") or manifest.get("weights")
        layer = f", layer {manifest['layer']}" if manifest.get("layer") else ""
        from .pooling import Pooling

        p = Pooling.from_params(manifest.get("params") or {})
        extra = ("" if p.pool == "avg" else f", gem p={p.gem_p:g}") + (", flip" if p.flip else "")
        extra += (f", scales {'/'.join(f'{x:g}' for x in p.scales)}" if p.scales != (1.0,) else "")
        extra += (f", + {'+'.join(p.layers)}" if p.layers else "")
        return f"cnn {manifest.get('model')} ({src}{layer}{extra})"
    params = manifest.get("params") or {}
    if "hash_size" in params:
        return f"{manifest.get('method')} ({params['hash_size'] ** 2} bits)"
    return f"{manifest.get('method')}" + (f" (vocab {params['vocab_size']})" if "vocab_size" in params else "")


def describe_difference(a: dict, b: dict) -> tuple[str, str]:
    """How two embedder manifests differ, each side in a few words (for refusal messages)."""
    if describe(a) != describe(b):
        return describe(a), describe(b)
    pa, pb = a.get("params") or {}, b.get("params") or {}
    keys = sorted(k for k in set(pa) | set(pb) if pa.get(k) != pb.get(k))
    if keys:
        fmt = lambda p: ", ".join(f"{k}={p.get(k)}" for k in keys)  # noqa: E731
        return f"{describe(a)} [{fmt(pa)}]", f"{describe(b)} [{fmt(pb)}]"
    return f"{describe(a)} [weights {str(a.get('weights_sha256'))[:12]}]", f"{describe(b)} [weights {str(b.get('weights_sha256'))[:12]}]"
