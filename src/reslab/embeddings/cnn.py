"""The CNN embedder: pooled features (or one layer's, averaged) of any network `reslab.inference` loads.

The network runs on a runtime of `reslab.inference` (torch, onnxruntime, openvino; "auto"
measures and picks), so `reslab embed`, `reslab search` and the search page share one loader
and one cached export.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ReslabError
from .base import l2_normalize


class PixelPreprocess:
    """Resize the shorter side, centre-crop, return uint8 (H, W, C): cheap to pickle across processes.

    whole_small: an image whose shorter side is below the crop (a thumbnail, upsampled anyway) is
    resized straight to the crop, so none of it is cut away; larger photos keep resize + centre crop.

    Normalisation happens later on the whole batch (on the GPU when there is one), a quarter of the
    bytes of a float tensor crossing the process boundary.
    """

    def __init__(self, crop: int, resize: int, interpolation: str, channels: int = 3, whole_small: bool = False):
        self.crop, self.resize, self.interpolation, self.channels = crop, resize, interpolation, channels
        self.whole_small = whole_small

    def __call__(self, image: Image.Image) -> np.ndarray:
        from ..preprocess import resize_center_crop

        mode = "RGB" if self.channels == 3 else "L"
        image = image if image.mode == mode else image.convert(mode)
        resize = self.crop if getattr(self, "whole_small", False) and min(image.size) < self.crop else self.resize
        return np.asarray(resize_center_crop(image, resize, self.crop, self.interpolation), dtype=np.uint8)


class CnnEmbedder:
    """Pooled features of a zoo model, a trained run or an exported file (or a chosen layer, averaged).

    model: a zoo name, or any spec `reslab.inference.load` accepts (a run folder, an exported .onnx).
    run: a training run (the same as passing it as `model`; kept for index manifests).
    runtime, precision: how the network runs (see `reslab.inference.open_session`); the default,
        torch fp32, is the exact reference; "auto" measures the runtimes here once and picks.
    batch_size: the batch `embed` will mostly see (auto's decision is per batch size).
    pool, gem_p, scales, flip, layers, whole_small: the retrieval descriptor (`reslab.inference.pooling`); the
        defaults are the classifier's own average pooling.
    """

    method = "cnn"
    needs_fit = False

    def __init__(
        self,
        model: str = "efficientnet_lite0",
        weights: str | None = "imagenet",
        run: str | Path | None = None,
        layer: str | None = None,
        device: str | None = None,
        runtime: str = "torch",
        precision: str | None = None,
        batch_size: int = 32,
        pool: str = "avg",
        gem_p: float = 3.0,
        scales=(1.0,),
        flip: bool = False,
        layers=(),
        whole_small: bool = False,
    ):
        from ..inference import load
        from ..inference.pooling import EmbeddingHead, Pooling

        self.pooling = Pooling(pool, float(gem_p), tuple(scales), bool(flip), tuple(layers), bool(whole_small))

        spec = run if run is not None else model
        self.loaded = load(spec, weights if run is None and _is_zoo_name(str(spec)) else None, device=_device(device))
        self.model_name, self.weights = self.loaded.name, self.loaded.weights
        self.run = str(run) if run is not None else self.loaded.run
        self.exported = str(self.loaded.network.path) if not self.loaded.is_torch else None
        self.classes = self.loaded.classes
        self.eval_preprocess = prep = self.loaded.preprocess
        self.pixels = PixelPreprocess(prep.crop, prep.resize, prep.interpolation, prep.channels, self.pooling.whole_small)
        self.min_size = prep.resize
        self.weights_sha256 = self.loaded.weights_sha256
        self.layer = layer
        self.head = EmbeddingHead(layer, self.pooling)
        self.runtime, self.precision, self.batch_size = runtime, precision, batch_size
        self.device = "cpu" if not self.loaded.is_torch else str(next(self.loaded.network.parameters()).device)
        self.dim = self._output_dim()
        self._session = None

    @property
    def net(self):
        """The PyTorch network (zoo and run specs)."""
        return self.loaded.torch_network("this needs")

    @property
    def session(self):
        """The runtime session, opened on first use (auto measures on its first use per machine)."""
        if self._session is None:
            from ..inference import open_session

            self._session = open_session(self.loaded, self.runtime, self.precision, batch_size=self.batch_size,
                                         layer=self.layer, pooling=self.head.pooling)
        return self._session

    # -- the protocol --------------------------------------------------------------------------
    def preprocess(self, image: Image.Image) -> np.ndarray:
        return self.pixels(image)

    def embed(self, batch: list) -> np.ndarray:
        embeddings, _logits = self.session.run(self._to_input(batch))
        return l2_normalize(embeddings)

    def fit(self, samples) -> None:  # nothing to learn: the network is the vocabulary
        return None

    def manifest(self) -> dict:
        return {
            "method": "cnn",
            "model": self.model_name,
            "weights": self.weights,
            "run": self.run,
            "exported": self.exported,
            "weights_sha256": self.weights_sha256,
            "layer": self.layer,
            "preprocess": self.eval_preprocess.as_dict(),
            "params": self.pooling.as_params(),
            "dim": self.dim,
            # how the vectors were computed; not part of the identity, but queries and updates run
            # the same way when they can, so an indexed image scores 1.0 against itself
            "runtime": str(self._session.choice) if self._session is not None else None,
        }

    @classmethod
    def from_manifest(cls, manifest: dict, index_dir: Path, runtime: str | None = None, precision: str | None = None, **options) -> "CnnEmbedder":
        """The embedder an index was built with. options: device, batch_size.

        runtime None or "auto": the runtime the index was built with when it is available here
        (queries then match the indexed vectors to the last bit the kernels allow), else
        torch fp32 (None) or a measured choice ("auto"). A named runtime is used as asked.
        """
        from ..inference.pooling import Pooling

        spec = manifest.get("exported") or manifest["model"]
        pooling = Pooling.from_params(manifest.get("params") or {}).as_params()  # absent keys: how older indexes pooled
        emb = cls(model=spec, weights=manifest.get("weights"), run=manifest.get("run"), layer=manifest.get("layer"),
                  runtime=runtime or "torch", precision=precision, **pooling, **options)
        if runtime in (None, "auto") and manifest.get("runtime"):
            emb._prefer_runtime(manifest["runtime"], precision)
        if emb.weights_sha256 != manifest.get("weights_sha256"):
            source = manifest.get("run") or manifest.get("exported") or manifest.get("weights")
            raise ReslabError(
                f"the weights of {manifest['model']} ({source}) have changed since the index {index_dir} was built; "
                "rebuild the index with `reslab embed`, or restore the original weights"
            )
        return emb

    def _prefer_runtime(self, recorded: str, precision: str | None) -> None:
        from ..inference.runtimes import RuntimeChoice, candidates

        runtime, _, recorded_precision = recorded.partition(" ")
        choice = RuntimeChoice(runtime, recorded_precision)
        if precision in (None, recorded_precision) and choice in candidates(self.device, exported=not self.loaded.is_torch):
            self.runtime, self.precision = choice.runtime, choice.precision

    # -- extras used by SearchIndex and the search page ----------------------------------------
    def classify(self, image: Image.Image, top_k: int = 5) -> list[tuple[str, float]] | None:
        """Top-k classes of the network's own head, or None when there is no meaningful head."""
        if self.classes is None:
            return None
        _embeddings, logits = self.session.run(self._to_input([self.preprocess(image)]))
        probs = softmax(logits[0].astype(np.float64))
        order = np.argsort(-probs)[: min(top_k, probs.size)]
        return [(self.classes[j], float(probs[j])) for j in order]

    def _output_dim(self) -> int:
        if self.head.layer is None and self.head.pooling is None:
            return self.loaded.embedding_dim
        from ..inference.heads import embedding_dim

        p = self.eval_preprocess
        net = self.loaded.torch_network("embedding a layer or a retrieval descriptor needs")
        return embedding_dim(net, self.head.layer, (p.channels, p.crop, p.crop), self.head.pooling)

    def _to_input(self, batch: list):
        """uint8 (B, H, W[, C]) pixels -> normalised (B, C, H, W) float32; on the GPU when the network is."""
        p = self.eval_preprocess
        pixels = np.stack(batch)
        if pixels.ndim == 3:
            pixels = pixels[..., None]
        if self.device.startswith("cuda"):  # a quarter of the bytes cross the bus; normalise there
            import torch

            from ..preprocess import normalize

            x = torch.from_numpy(pixels).pin_memory().to(self.device, non_blocking=True)
            return normalize(x.permute(0, 3, 1, 2).float().div_(255.0), p.mean[: p.channels], p.std[: p.channels])
        from ..preprocess import normalize_pixels

        return normalize_pixels(pixels, p.mean, p.std)

    def __getstate__(self):
        # Decode workers need only the preprocessing: never pickle the network or a runtime session.
        return {"pixels": self.pixels, "min_size": self.min_size, "dim": self.dim}

    def __setstate__(self, state):
        self.__dict__.update(state)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def _device(device: str | None) -> str:
    from ..devices import resolve_device

    return str(resolve_device(device or "auto"))


def _is_zoo_name(spec: str) -> bool:
    from ..models import list_models

    return spec in list_models()
