"""Runtimes behind one interface: a `Session` runs normalised images -> (embeddings, logits).

    torch          PyTorch eager; fp32, or bf16 autocast + channels_last (CPU or CUDA)
    torch-compile  torch.compile (inductor, weights frozen into the graph); fp32 or bf16
    onnxruntime    ONNX Runtime on the cached ONNX export; fp32 (CUDA provider when present)
    openvino       OpenVINO on the cached IR; fp32 or bf16 (the CPU plugin's inference precision)

`open_session(loaded, runtime, precision, ...)` builds one; "auto" measures and picks (see
`reslab.inference.auto`). Every session returns NumPy float32 arrays, whatever ran inside.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ReslabError
from .pooling import EmbeddingHead

log = logging.getLogger(__name__)

RUNTIMES = ("torch", "torch-compile", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "bf16")
INSTALL_HINT = {"onnxruntime": "pip install 'reslab[onnx]'", "openvino": "pip install 'reslab[openvino]'"}


@dataclass(frozen=True)
class RuntimeChoice:
    runtime: str
    precision: str

    def __str__(self) -> str:
        return f"{self.runtime} {self.precision}"


def unavailable_reason(runtime: str, device: str = "cpu", exported: bool = False) -> str | None:
    """Why `runtime` cannot run here (one sentence), or None when it can."""
    if runtime not in RUNTIMES:
        raise ReslabError(f"unknown runtime '{runtime}'; choose auto or one of {', '.join(RUNTIMES)}")
    if runtime.startswith("torch"):
        if exported:
            return f"an exported ONNX file runs on onnxruntime or openvino, not {runtime}"
        if runtime == "torch-compile" and device == "cpu" and not (shutil.which("cc") or shutil.which("gcc") or shutil.which("g++")):
            return "torch-compile needs a C++ compiler (cc/gcc) for its CPU kernels, and none is on PATH"
        return None
    if importlib.util.find_spec(runtime) is None:
        return f"{runtime} is not installed ({INSTALL_HINT[runtime]})"
    if runtime == "openvino" and device != "cpu":
        return "openvino runs here on the CPU only; use --device cpu, or another runtime on the GPU"
    if runtime == "onnxruntime" and device != "cpu":
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return "this onnxruntime has no CUDA provider (pip install onnxruntime-gpu)"
    return None


def precisions_of(runtime: str, device: str = "cpu") -> tuple[str, ...]:
    """The precisions a runtime offers: ONNX Runtime has no bf16 kernels for these networks."""
    return ("fp32",) if runtime == "onnxruntime" else PRECISIONS


def candidates(device: str = "cpu", exported: bool = False, runtime: str | None = None, precision: str | None = None) -> list[RuntimeChoice]:
    """Every (runtime, precision) available here, narrowed to `runtime` / `precision` when given."""
    check_precision(precision)
    out = []
    for name in RUNTIMES if runtime is None else (runtime,):
        if unavailable_reason(name, device, exported) is None:
            out += [RuntimeChoice(name, p) for p in precisions_of(name, device) if precision in (None, p)]
    return out


def check_precision(precision: str | None) -> None:
    if precision is not None and precision not in PRECISIONS:
        raise ReslabError(f"unknown precision '{precision}'; choose {' or '.join(PRECISIONS)}")


class Session:
    """A network compiled for one runtime: run(images) -> (embeddings (B, D), logits (B, K))."""

    choice: RuntimeChoice
    device: str = "cpu"

    def run(self, images) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def logits_module(self):
        """An nn.Module images -> logits tensor (on the images' device), for code written for modules."""
        import torch
        from torch import nn

        session = self

        class SessionLogits(nn.Module):
            def forward(self, images: torch.Tensor) -> torch.Tensor:
                return torch.from_numpy(session.run(images)[1]).to(images.device)

        return SessionLogits()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.choice}, {self.device})"


class TorchSession(Session):
    """PyTorch eager or compiled, fp32 or bf16 autocast with channels_last."""

    def __init__(self, loaded, head: EmbeddingHead | None, precision: str = "fp32", compile: bool = False, threads: int | None = None):
        import torch

        from .heads import InferenceHead
        from .threads import requested_threads

        # PyTorch's thread count is process-wide: set it only when asked (argument or RESLAB_THREADS)
        self.threads = threads or requested_threads()
        net = loaded.torch_network("the torch runtime needs")
        self.device = str(next(net.parameters()).device)
        self.choice = RuntimeChoice("torch-compile" if compile else "torch", precision)
        self.channels_last = precision == "bf16"
        if self.channels_last or compile:
            # a private copy: channels_last and frozen weights must not leak into the caller's network
            net = copy.deepcopy(net)
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.head = InferenceHead.of(net, head).eval()
        self.forward = self.head
        if compile:
            import torch._inductor.config as inductor_config

            inductor_config.freezing = True  # weights become constants: constant folding, prepacked kernels
            # on a GPU, CUDA graphs too: one launch per batch instead of one per kernel
            mode = "reduce-overhead" if self.device.startswith("cuda") else None
            self.forward = torch.compile(self.head, dynamic=False, mode=mode)

    def run(self, images) -> tuple[np.ndarray, np.ndarray]:
        import torch

        if self.threads and self.device == "cpu" and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)  # process-wide in PyTorch: set for the session that runs now
        x = torch.as_tensor(images).to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        dev = torch.device(self.device).type
        # no_grad rather than inference_mode: inductor's frozen graphs require it
        with torch.no_grad(), torch.autocast(dev, dtype=torch.bfloat16, enabled=self.choice.precision == "bf16"):
            emb, logits = self.forward(x)
        return emb.float().cpu().numpy(), logits.float().cpu().numpy()


class OnnxRuntimeSession(Session):
    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None):
        import onnxruntime as ort

        from .threads import intra_op_threads

        self.device, self.path = device, Path(path)
        self.choice = RuntimeChoice("onnxruntime", "fp32")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or intra_op_threads()
        options.log_severity_level = 3
        # No busy-waiting between runs: ORT's idle threads otherwise spin for tens of milliseconds
        # after each run, taking the cores from whatever runs next (image decoding, another runtime
        # being timed: OpenVINO measured 15% slower right after ONNX Runtime). docs/inference.md.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") else ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as e:  # ORT raises its own exception types with long C++ messages
            raise RuntimeLoadError(f"ONNX Runtime cannot load {path} ({str(e).splitlines()[0]})") from None

    def run(self, images) -> tuple[np.ndarray, np.ndarray]:
        emb, logits = self.session.run(None, {"images": _numpy(images)})
        return emb, logits


class OpenVinoSession(Session):
    def __init__(self, path: str | Path, precision: str = "fp32", threads: int | None = None, blob_cache: Path | None = None):
        from .signal_stack import keep_signal_stack
        from .threads import intra_op_threads

        self.device, self.path = "cpu", Path(path)
        self.choice = RuntimeChoice("openvino", precision)
        config = {
            # the precision the CPU plugin computes in: bf16 where the CPU has it (avx512_bf16, AMX)
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
            # one request at a time on all the cores we were given: a batch is already parallel work
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": threads or intra_op_threads(),
        }
        if blob_cache is not None:
            config["CACHE_DIR"] = str(blob_cache)  # compiled blobs: a second process skips compilation
        try:
            compiled = _compile(path, config)
        except Exception as e:  # noqa: BLE001 - OpenVINO raises RuntimeError with long C++ messages
            if blob_cache is None:
                raise RuntimeLoadError(f"OpenVINO cannot load {path} ({str(e).splitlines()[0]})") from None
            # a damaged compiled blob: drop OpenVINO's own cache and compile from the IR
            shutil.rmtree(blob_cache, ignore_errors=True)
            config.pop("CACHE_DIR")
            try:
                compiled = _compile(path, config)
            except Exception as e2:  # noqa: BLE001
                raise RuntimeLoadError(f"OpenVINO cannot load {path} ({str(e2).splitlines()[0]})") from None
        if precision == "bf16" and "bf" not in str(compiled.get_property("INFERENCE_PRECISION_HINT")).lower():  # <Type: 'bfloat16'>
            raise RuntimeLoadError("this CPU has no bf16 support in OpenVINO (needs avx512_bf16 or AMX)")
        with keep_signal_stack():
            self.request = compiled.create_infer_request()

    def run(self, images) -> tuple[np.ndarray, np.ndarray]:
        out = self.request.infer({0: _numpy(images)})  # copies the outputs out of the request's buffers
        return np.asarray(out[0], dtype=np.float32), np.asarray(out[1], dtype=np.float32)


def _compile(path: Path, config: dict):
    import openvino as ov

    from .signal_stack import keep_signal_stack

    with keep_signal_stack():  # OpenVINO replaces the thread's alternate signal stack (see signal_stack)
        return ov.Core().compile_model(str(path), "CPU", config)


class RuntimeLoadError(ReslabError):
    """A runtime could not load a model file (a damaged cache entry is rebuilt once on this)."""


def _numpy(images) -> np.ndarray:
    if hasattr(images, "detach"):  # a torch tensor
        images = images.detach().float().cpu().numpy()
    return np.ascontiguousarray(images, dtype=np.float32)


def build_session(loaded, choice: RuntimeChoice, head: EmbeddingHead | None = None, threads: int | None = None) -> Session:
    """A session of `choice` for `loaded`; the export it needs comes from (or goes into) the cache."""
    from . import cache
    from .export import cached_onnx, cached_openvino_ir

    device = "cpu" if not loaded.is_torch else str(next(loaded.network.parameters()).device)
    reason = unavailable_reason(choice.runtime, device, exported=not loaded.is_torch)
    if reason is not None:
        raise ReslabError(f"runtime {choice.runtime} is unavailable: {reason}; use --runtime auto, or another runtime")
    if choice.precision not in precisions_of(choice.runtime, device):
        raise ReslabError(f"{choice.runtime} has no {choice.precision} mode; use --precision {' or '.join(precisions_of(choice.runtime, device))}")
    if choice.runtime in ("torch", "torch-compile"):
        return TorchSession(loaded, head, choice.precision, compile=choice.runtime == "torch-compile", threads=threads)
    for attempt in (1, 2):  # a file that hashes right but does not load is rebuilt once
        path = cached_onnx(loaded, head) if choice.runtime == "onnxruntime" else cached_openvino_ir(loaded, head)
        try:
            if choice.runtime == "onnxruntime":
                return OnnxRuntimeSession(path, device, threads)
            return OpenVinoSession(path, choice.precision, threads, blob_cache=path.parent.parent / f".blobs-{path.parent.name}")
        except RuntimeLoadError as e:
            if attempt == 2 or not loaded.is_torch or "bf16 support" in str(e):
                raise
            cache.discard(path.parent, str(e))
    raise AssertionError("unreachable")
