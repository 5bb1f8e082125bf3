"""ONNX export of a zoo model or of its embedding head, checked against PyTorch with ONNX Runtime."""

from __future__ import annotations

import io
import logging
import os
import warnings
from pathlib import Path

import numpy as np

from ..errors import ReslabError
from ..fileio import atomic_write_bytes

log = logging.getLogger(__name__)

OPSET = 17


def export_onnx(module, out: str | Path, input_size: tuple[int, int, int], output_name: str, opset: int = OPSET) -> Path:
    """Export `module` (eval mode, CPU) with a dynamic batch axis; the input is named "images"."""
    import torch

    module = module.eval().cpu()
    x = torch.randn(2, *input_size)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # the TorchScript exporter: the dynamo one needs onnxscript, which is not a dependency;
        # TracerWarnings about SAME padding are expected (the spatial size is fixed, the batch is not)
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (x,),
            buffer,
            input_names=["images"],
            output_names=[output_name],
            dynamic_axes={"images": {0: "batch"}, output_name: {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    out = Path(out)
    atomic_write_bytes(out, buffer.getvalue())
    return out


def ort_session(path: str | Path):
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.log_severity_level = 3
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as e:  # ORT raises its own exception types with long C++ messages
        raise ReslabError(f"ONNX Runtime cannot load {path} ({str(e).splitlines()[0]}); export it again with `reslab export`") from None


def max_abs_diff(module, onnx_path: str | Path, x) -> float:
    """Largest |PyTorch - ONNX Runtime| over the outputs for input batch `x`."""
    import torch

    with torch.inference_mode():
        expected = module.eval().cpu()(x).float().numpy()
    got = ort_session(onnx_path).run(None, {"images": x.numpy()})[0]
    return float(np.max(np.abs(expected - got)))


def cached_embedding_onnx(embedder) -> Path:
    """The embedder's ONNX file, exported once per (model, weights, layer) into the user cache."""
    cache = Path(os.environ.get("RESLAB_CACHE", Path.home() / ".cache" / "reslab")) / "onnx"
    name = f"{embedder.model_name}-{embedder.weights_sha256[:16]}-{embedder.layer or 'pooled'}.onnx"
    path = cache / name
    if not path.exists():
        crop = embedder.eval_preprocess.crop
        log.info("exporting %s to ONNX (once) at %s", embedder.model_name, path)
        module = embedder.embedding_module()
        export_onnx(module, path, (3, crop, crop), "embeddings")
        embedder.net.to(embedder.device)  # export moved it to the CPU
    return path


def export_model(model: str, out: str | Path, weights: str | None = "imagenet", run=None, embedding: bool = False) -> tuple[Path, float]:
    """`reslab export`: the classifier (logits) or the embedding head; returns (path, max abs diff)."""
    import torch

    from .embedders import CnnEmbedder

    if not str(out).endswith(".onnx"):
        raise ReslabError(f"the ONNX output {out} should end in .onnx; e.g. --onnx {Path(out).with_suffix('.onnx')}")
    emb = CnnEmbedder(model=model, weights=weights, run=run, device="cpu")
    crop = emb.eval_preprocess.crop
    module = emb.embedding_module() if embedding else emb.net
    path = export_onnx(module, out, (3, crop, crop), "embeddings" if embedding else "logits")
    x = torch.randn(3, 3, crop, crop, generator=torch.Generator().manual_seed(0))
    return path, max_abs_diff(module, path, x)
