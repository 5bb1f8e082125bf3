"""Exports: the inference graph to ONNX (for ONNX Runtime and OpenVINO), ONNX to OpenVINO IR.

`cached_onnx` and `cached_openvino_ir` export once per (model, weights, embedding head, input size,
exporter version) into the inference cache; `export_onnx_file` is `reslab export`, which writes
a standalone file carrying its preprocessing and class names.
"""

from __future__ import annotations

import io
import json
import logging
import warnings
from pathlib import Path

from ..errors import ReslabError
from ..fileio import atomic_write_bytes
from . import cache
from .pooling import EmbeddingHead

log = logging.getLogger(__name__)

OPSET = 17
FORMAT = 2  # bump when the exported graph changes (inputs, outputs, head), so old entries are not reused
INPUT = "images"
OUTPUTS = ("embeddings", "logits")
ONNX_FILE = "model.onnx"
IR_FILE = "model.xml"


def onnx_bytes(module, input_size: tuple[int, int, int], metadata: dict | None = None, opset: int = OPSET) -> bytes:
    """`module` (images -> (embeddings, logits)) as ONNX with a dynamic batch axis."""
    import torch

    module = module.eval().cpu()
    x = torch.randn(2, *input_size)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # the TorchScript exporter: the dynamo one needs onnxscript, which is not a dependency;
        # TracerWarnings about SAME padding are expected (the spatial size is fixed, the batch is not)
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (x,), buffer, input_names=[INPUT], output_names=list(OUTPUTS),
            dynamic_axes={INPUT: {0: "batch"}, **{name: {0: "batch"} for name in OUTPUTS}},
            opset_version=opset, dynamo=False,
        )
    data = buffer.getvalue()
    if metadata:
        import onnx

        from .loader import ONNX_METADATA_KEY

        model = onnx.load_from_string(data)
        model.metadata_props.add(key=ONNX_METADATA_KEY, value=json.dumps(metadata))
        data = model.SerializeToString()
    return data


def onnx_key(loaded, head: EmbeddingHead | None) -> dict:
    import torch

    p = loaded.preprocess
    return {"model": loaded.name, "weights_sha256": loaded.weights_sha256, **(head or EmbeddingHead()).key(),
            "input": [p.channels, p.crop, p.crop], "torch": torch.__version__, "opset": OPSET, "format": FORMAT}


def cached_onnx(loaded, head: EmbeddingHead | None = None) -> Path:
    """The ONNX file of `loaded`'s inference graph, exported once into the cache."""
    head = head or EmbeddingHead()
    if not loaded.is_torch:
        if head != EmbeddingHead():
            raise ReslabError(f"{loaded.source} is exported with its pooled features only; drop --layer and the pooling "
                              "options, or use the model it came from")
        return loaded.network.path

    def build(folder: Path) -> None:
        from .heads import InferenceHead

        p = loaded.preprocess
        log.info("exporting %s to ONNX (once; cached in %s)", loaded.name, cache.cache_root())
        device = next(loaded.network.parameters()).device
        try:
            data = onnx_bytes(InferenceHead.of(loaded.network, head), (p.channels, p.crop, p.crop))
        except Exception as e:  # noqa: BLE001 - an operator ONNX lacks (e.g. antialiased resizing for scales < 1)
            reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise ReslabError(f"{loaded.name} ({head.label}) cannot be exported to ONNX: {reason}; use --runtime torch") from None
        finally:
            loaded.network.to(device)  # the export ran on the CPU
        atomic_write_bytes(folder / ONNX_FILE, data)

    folder = cache.cached_entry("onnx", onnx_key(loaded, head), build, f"{loaded.name}-{head.label}")
    return folder / ONNX_FILE


def cached_openvino_ir(loaded, head: EmbeddingHead | None = None) -> Path:
    """The OpenVINO IR (model.xml + model.bin, fp32 weights) converted once from the cached ONNX."""
    import openvino as ov

    head = head or EmbeddingHead()
    onnx_path = cached_onnx(loaded, head)
    key = {"onnx_sha256": cache.file_sha256(onnx_path) if not loaded.is_torch else cache.key_digest(onnx_key(loaded, head)),
           "openvino": ov.get_version(), "format": FORMAT}

    def build(folder: Path) -> None:
        log.info("converting %s to OpenVINO IR (once)", loaded.name)
        # weights stay fp32: the precision is chosen when compiling (bf16 or f32), not here
        from .signal_stack import keep_signal_stack

        with keep_signal_stack():  # OpenVINO replaces the thread's alternate signal stack (see signal_stack)
            ov.save_model(ov.convert_model(str(onnx_path)), str(folder / IR_FILE), compress_to_fp16=False)

    folder = cache.cached_entry("openvino", key, build, f"{loaded.name}-{head.label}")
    return folder / IR_FILE


def export_onnx_file(loaded, out: str | Path) -> tuple[Path, float]:
    """`reslab export`: a standalone ONNX file (embeddings + logits, with metadata); returns (path, max abs diff)."""
    import numpy as np
    import torch

    from .heads import InferenceHead

    out = Path(out)
    if out.suffix != ".onnx":
        raise ReslabError(f"the ONNX output {out} should end in .onnx; e.g. --out {out.with_suffix('.onnx')}")
    net = loaded.torch_network("exporting needs")
    p = loaded.preprocess
    metadata = {"name": loaded.name, "source": loaded.source, "classes": loaded.classes, "preprocess": p.as_dict(),
                "embedding_dim": loaded.embedding_dim, "weights_sha256": loaded.weights_sha256}
    head = InferenceHead(net.cpu(), None)
    atomic_write_bytes(out, onnx_bytes(head, (p.channels, p.crop, p.crop), metadata))
    x = torch.randn(3, p.channels, p.crop, p.crop, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = [t.numpy() for t in head(x)]
    from .runtimes import OnnxRuntimeSession

    got = OnnxRuntimeSession(out, "cpu").run(x.numpy())
    return out, float(max(np.max(np.abs(e - g)) for e, g in zip(expected, got)))
