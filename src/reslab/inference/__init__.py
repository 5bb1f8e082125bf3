"""One inference layer for every command: load a network, run it on the fastest faithful runtime.

    from reslab.inference import load, open_session

    m = load("efficientnet_lite0", weights="imagenet")        # or a run folder, or an exported .onnx
    session = open_session(m, runtime="auto", batch_size=32)  # measured once per machine, then cached
    embeddings, logits = session.run(images)                  # (B, C, H, W) normalised float32

Runtimes: torch (fp32, bf16 + channels_last), torch-compile, onnxruntime, openvino (fp32, bf16).
Importing this package does not import torch, ONNX Runtime or OpenVINO.
"""

from __future__ import annotations

from .loader import ExportedFile, LoadedModel, default_weights, load
from .runtimes import PRECISIONS, RUNTIMES, RuntimeChoice, Session

__all__ = ["ExportedFile", "LoadedModel", "PRECISIONS", "RUNTIMES", "RuntimeChoice", "Session", "default_weights", "load", "open_session"]


def open_session(loaded: LoadedModel, runtime: str | None = "auto", precision: str | None = None, *, batch_size: int = 32,
                 layer: str | None = None, pooling=None, threads: int | None = None, say=None) -> Session:
    """A session running `loaded` on `runtime` ("auto": measured once here, then cached).

    runtime: auto | torch | torch-compile | onnxruntime | openvino. precision: fp32 | bf16; with
    auto it narrows the candidates, with a named runtime it defaults to fp32.
    batch_size: the batch the caller will run (auto's decision is per batch size).
    layer: embed this layer (global-average-pooled) instead of the pooled features.
    pooling: a `reslab.inference.pooling.Pooling` (GeM, flips, scales, layers) for the embeddings.
    say: where auto's one-line explanation goes (default: the log at INFO).
    """
    from .pooling import EmbeddingHead
    from .runtimes import build_session, check_precision

    check_precision(precision)
    head = EmbeddingHead(layer, pooling)
    if runtime in (None, "auto"):
        from .auto import choose_session

        return choose_session(loaded, batch_size=batch_size, head=head, precision=precision, threads=threads, say=say)
    return build_session(loaded, RuntimeChoice(runtime, precision or "fp32"), head, threads)
