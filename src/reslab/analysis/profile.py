"""Per-layer profile of a network: output shape, parameters, MACs, FLOPs, activation memory,
receptive field and depth, from one forward pass on the `meta` device (shapes only, no compute).

How it works: forward pre/post hooks keep a stack of the module calls in progress, and a
`TorchDispatchMode` sees every aten op the forward runs. Each op's cost is charged to the innermost
module call; ops a *leaf* module runs fill that module's row, while work done directly in a
container's `forward` (the residual `out += identity`, GoogLeNet's functional `F.relu`) gets a row of
its own, named after the container (`layer1.0.add`). The same dispatch mode carries a receptive
field and a weighted-layer depth with every tensor, so branches (residual, inception) are followed
along the real data path rather than guessed from module order.

Transformers: patch tokens (B, N, D) made by flattening a feature map keep each position's field
until an op multiplies two activations (Q K^T, attention weights x V) or a fused attention kernel
runs; from there on every token sees the whole image (`Profile.global_from` names that layer).
Such activation x activation products count in `macs` like any matmul (ViT-B/16's published 17.56
GMACs include them) but not in `depth`, which counts layers with weights.

What counts (torchvision's convention, which reproduces the published "GFLOPS" that are MACs):
  macs   multiply-accumulates of convolutions and matrix products (conv, linear, and attention's
         Q K^T and weights x V); bias additions are not counted.
  flops  2 x macs: one multiply and one add per MAC, as `torch.utils.flop_counter` counts.
  other_flops  the elementwise rest, reported apart so `macs` stays comparable with papers:
         batch norm 2 per element (an eval-mode scale and shift), activations and additions
         1 per element, pools one per window element.
"""

from __future__ import annotations

import logging
import re
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from ..errors import InputSizeError, ReslabError
from .ops import (
    ADAPTIVE_POOL_OPS,
    ATTENTION_OPS,
    AVG_POOL_OPS,
    MATMUL_OPS,
    MAX_POOL_OPS,
    FastMeta,
    arg,
    first_tensor,
    matmul_operands,
    meta_fast_path,
    op_cost,
    tensors_in,
)
from .receptive_field import ReceptiveField, adaptive_window, widest

log = logging.getLogger(__name__)

aten = torch.ops.aten


@dataclass
class LayerStats:
    """One row: a leaf module call, or work done directly in a container's forward."""

    name: str  # module path ("layer1.0.conv1"); container ops get ".add", ".relu", ...
    type: str  # module class ("Conv2d") or op name ("add")
    output_shape: tuple[int, ...] = ()
    params: int = 0
    macs: int = 0  # conv / linear multiply-accumulates
    flops: int = 0  # 2 x macs for conv / linear; elementwise count for the rest
    activation_bytes: int = 0  # bytes of the output; 0 when written in place
    receptive_field: ReceptiveField | None = None  # None: the output has no spatial grid (global)
    depth: int = 0  # weighted layers (conv, linear) on the longest path from the input

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "type": self.type,
            "output_shape": list(self.output_shape),
            "params": self.params,
            "macs": self.macs,
            "flops": self.flops,
            "activation_bytes": self.activation_bytes,
            "receptive_field": self.receptive_field.as_dict() if self.receptive_field else None,
            "depth": self.depth,
        }


@dataclass
class Profile:
    input_size: tuple[int, int, int]
    batch: int
    layers: list[LayerStats]
    params: int  # parameters the forward pass used (GoogLeNet's train-only aux heads excluded)
    params_total: int  # every parameter the model holds
    output_depth: int  # weighted layers on the longest input-to-output path (ResNet-50: 50)
    flop_counter_flops: int | None  # torch.utils.flop_counter's total (cross_check=True), should be 2 x macs
    model_name: str = ""
    global_from: str | None = None  # the first layer where attention lets every position see the whole input

    @property
    def macs(self) -> int:
        return sum(r.macs for r in self.layers)

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def other_flops(self) -> int:
        return sum(r.flops for r in self.layers if not r.macs)

    @property
    def activation_bytes(self) -> int:
        """Sum of every layer's output, the memory a training step keeps for backward (roughly)."""
        return sum(r.activation_bytes for r in self.layers)

    @property
    def receptive_field(self) -> ReceptiveField | None:
        """The field of the last spatial feature map (before global pooling); None when attention made it global."""
        if self.global_from is not None:
            return None
        for row in reversed(self.layers):
            if row.receptive_field is not None:
                return row.receptive_field
        return None

    def layer(self, name: str) -> LayerStats:
        for row in self.layers:
            if row.name == name:
                return row
        raise KeyError(name)

    def summary(self) -> dict:
        rf = self.receptive_field
        return {
            "model": self.model_name,
            "input_size": list(self.input_size),
            "batch": self.batch,
            "params": self.params,
            "params_total": self.params_total,
            "macs": self.macs,
            "gmacs": self.macs / 1e9,
            "flops": self.flops,
            "other_flops": self.other_flops,
            "activation_bytes": self.activation_bytes,
            "receptive_field": rf.as_dict() if rf else None,
            "global_from": self.global_from,
            "depth": self.output_depth,
        }

    def as_dict(self) -> dict:
        return {**self.summary(), "layers": [r.as_dict() for r in self.layers]}


def profile_model(
    model: nn.Module,
    input_size: tuple[int, int, int] = (3, 224, 224),
    batch: int = 1,
    device: str | torch.device | None = "meta",
    dtype: torch.dtype | None = None,
    cross_check: bool = False,
) -> Profile:
    """Profile one forward pass of `model` on a (batch, *input_size) input, in eval mode.

    device="meta" (default) runs on shape-only tensors, so VGG-19 or ResNet-1202 cost no compute;
    the model's own weights are left untouched (meta stand-ins are swapped in for the call).
    device=None runs on the model's own device with real tensors (for models the meta device cannot run).
    dtype: of the input, by default the model's own; activation bytes follow it.
    cross_check=True also runs `torch.utils.flop_counter.FlopCounterMode` (about 2x slower: it
    decomposes batch norm on meta) and warns if its FLOPs differ from 2 x macs, e.g. for an op
    this counter does not know (attention kernels).
    Raises ReslabError for an input the network cannot take, naming the smallest one it accepts.
    """
    input_size = _check_input_size(input_size)
    if batch < 1:
        raise ReslabError(f"batch must be at least 1, got {batch}")
    if dtype is None:  # the model's own floating dtype (a half-precision model gets a half input)
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    was_training = model.training
    model.eval()
    try:
        return _profile(model, input_size, batch, device, dtype, cross_check)
    finally:
        model.train(was_training)


def parse_input_size(text: str, channels: int = 3) -> tuple[int, int, int]:
    """'3x224x224' -> (3, 224, 224); '224' -> (channels, 224, 224). Raises ReslabError."""
    parts = re.split(r"[x,\s]+", text.strip().lower())
    try:
        dims = [int(p) for p in parts if p]
    except ValueError:
        dims = []
    if len(dims) == 1:
        dims = [channels, dims[0], dims[0]]
    if len(dims) != 3:
        raise ReslabError(f"input size '{text}' is not CxHxW; write it like 3x224x224 (or 224 for a square {channels}-channel input)")
    return _check_input_size(tuple(dims))


def _check_input_size(size) -> tuple[int, int, int]:
    try:
        dims = tuple(int(v) for v in size)
    except (TypeError, ValueError):
        dims = ()
    if len(dims) != 3 or any(v <= 0 for v in dims):
        shown = "x".join(map(str, size)) if isinstance(size, (tuple, list)) else repr(size)
        raise ReslabError(f"input size {shown} must be three positive integers (C, H, W), such as 3x224x224")
    return dims


def _profile(model, input_size, batch, device, dtype, cross_check) -> Profile:
    from torch.utils.flop_counter import FlopCounterMode

    names = {m: (n or "(model)") for n, m in model.named_modules()}
    if device is None:
        ref = next(iter(model.parameters()), None)
        device = ref.device if ref is not None else torch.device("cpu")
    device = torch.device(device)
    recorder = _Recorder(names, cross_check)
    # two global hooks rather than two per module: on ResNet-1202 registering thousands of handles
    # took longer than the meta forward itself
    from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

    hooks = [register_module_forward_pre_hook(recorder.enter), register_module_forward_hook(recorder.leave)]
    # a real run gets image-like values (data-dependent models branch on them); meta has none
    make = torch.empty if device.type == "meta" else torch.randn
    x = make((batch, *input_size), device=device, dtype=dtype)
    recorder.mark_input(x)
    try:
        with torch.no_grad(), (FlopCounterMode(display=False) if cross_check else nullcontext()) as counter:
            with recorder:
                out = _call(model, x, device)
    except (RuntimeError, ValueError) as e:
        raise _too_small_error(model, input_size, device, dtype, e) from None
    finally:
        for h in hooks:
            h.remove()
    out_info = recorder.info_of(first_tensor(out))
    params_total = sum(p.numel() for p in model.parameters())
    counted = int(counter.get_total_flops()) if cross_check else None
    macs = sum(r.macs for r in recorder.rows)
    if counted is not None and counted != 2 * macs:
        log.warning("FlopCounterMode counts %d FLOPs but conv/linear MACs give %d; ops outside conv/matmul?", counted, 2 * macs)
    return Profile(
        input_size=input_size,
        batch=batch,
        layers=recorder.rows,
        params=recorder.params_used(),
        params_total=params_total,
        output_depth=out_info.depth if out_info else 0,
        flop_counter_flops=counted,
        model_name=getattr(model, "model_name", type(model).__name__),
        global_from=recorder.global_from,
    )


def _call(model: nn.Module, x: torch.Tensor, device: torch.device):
    """Run the model; on meta, swap meta stand-ins for its weights for the length of the call."""
    tensors = dict(model.named_parameters(remove_duplicate=False))
    tensors.update(model.named_buffers(remove_duplicate=False))
    if all(t.device == device for t in tensors.values()):
        return model(x)
    if device.type != "meta":
        raise ReslabError(f"the model's weights are not on {device}; move it there first or profile on 'meta'")
    stand_ins = {k: torch.empty_like(t, device="meta") for k, t in tensors.items()}
    return torch.func.functional_call(model, stand_ins, (x,), tie_weights=True, strict=False)


def _too_small_error(model, input_size, device, dtype, error: RuntimeError) -> ReslabError:
    """Turn a shape error into one sentence naming the smallest square input the model accepts."""
    if isinstance(error, InputSizeError):
        return error  # the model named the sizes it takes and the fix itself
    c, h, w = input_size
    who = getattr(model, "model_name", None) or "this model"
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if device.type == "meta":

        def runs(side: int) -> bool:
            try:
                with torch.no_grad(), FastMeta():
                    _call(model, torch.empty((1, c, side, side), device="meta", dtype=dtype), device)
                return True
            except (RuntimeError, ValueError):
                return False

        hi = max(h, w, 1)
        while not runs(hi):
            hi *= 2
            if hi > 4096:
                return ReslabError(
                    f"{who} cannot run on a {c}x{h}x{w} input on the meta device ({reason}); check the channel "
                    "count, or if the model needs real values, profile it with device=None"
                )
        lo = 0  # invariant: lo fails (or is 0), hi runs
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if runs(mid) else (mid, hi)
        if hi > min(h, w):
            return ReslabError(
                f"a {c}x{h}x{w} input is too small for {who}; the smallest square input it accepts is {c}x{hi}x{hi}"
            )
    if device.type == "meta":
        return ReslabError(
            f"{who} cannot run on a {c}x{h}x{w} input on the meta device ({reason}); "
            "if it needs real values, profile it with device=None"
        )
    return ReslabError(f"{who} cannot run on a {c}x{h}x{w} input: {reason}")


@dataclass
class _TensorInfo:
    rf: ReceptiveField | None  # None: sees the whole input (pooled, flattened, or mixed by attention)
    depth: int
    tokens: bool = False  # a transformer's token lineage: (B, N, D) or its head split, not a feature map


@dataclass
class _Call:
    module: nn.Module
    name: str
    leaf: bool
    row: LayerStats | None = None


class _Recorder(TorchDispatchMode):
    """Charges every aten op to the innermost module call and threads RF and depth through tensors."""

    def __init__(self, names: dict[nn.Module, str], cross_check: bool = False):
        super().__init__()
        self.names = names
        self.cross_check = cross_check
        self.rows: list[LayerStats] = []
        self.stack: list[_Call] = []
        self.info: dict[int, _TensorInfo] = {}
        self.keep_alive: list[torch.Tensor] = []  # ids stay unique while the tensors live
        self.used_modules: dict[nn.Module, None] = {}
        self.row_names: dict[str, int] = {}
        self.global_from: str | None = None

    # --- module calls -------------------------------------------------------------------
    def enter(self, module, args):
        if module not in self.names:
            return  # a module outside the profiled model
        leaf = next(iter(module.children()), None) is None
        call = _Call(module, self.names.get(module, type(module).__name__), leaf)
        if leaf:
            call.row = LayerStats(self._unique(call.name), type(module).__name__)
        self.stack.append(call)
        self.used_modules[module] = None

    def leave(self, module, args, output):
        if module not in self.names:
            return
        call = self.stack.pop()
        if call.row is None:
            return
        row = call.row
        out = first_tensor(output)
        if row.flops == 0 and not any(True for _ in module.parameters(recurse=False)):
            return  # Identity, Dropout in eval, Flatten: no work, no row
        row.params = sum(p.numel() for p in module.parameters(recurse=False))
        if out is not None:
            row.output_shape = tuple(out.shape)
            inp = first_tensor(args)
            in_place = inp is not None and out is inp
            row.activation_bytes = 0 if in_place else out.numel() * out.element_size()
            info = self.info_of(out)
            if info is not None:
                row.receptive_field, row.depth = info.rf, info.depth
        self.rows.append(row)

    def mark_input(self, x: torch.Tensor) -> None:
        self._set(x, _TensorInfo(ReceptiveField.input(), 0))

    def info_of(self, t) -> _TensorInfo | None:
        return self.info.get(id(t)) if isinstance(t, torch.Tensor) else None

    def params_used(self) -> int:
        seen: set[int] = set()
        total = 0
        for m in self.used_modules:
            for p in m.parameters(recurse=False):
                if id(p) not in seen:
                    seen.add(id(p))
                    total += p.numel()
        return total

    # --- aten ops -------------------------------------------------------------------------
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        packet = func.overloadpacket
        # with a FlopCounterMode outside us, convolutions must reach it: no shortcut for them
        out = None if (self.cross_check and packet is aten.convolution) else meta_fast_path(func, packet, args, kwargs)
        if out is None:
            out = func(*args, **kwargs)
        first = first_tensor(out)
        if first is None:
            return out
        inputs = [t for t in tensors_in(args) + tensors_in(kwargs) if id(t) in self.info]
        in_infos = [self.info[id(t)] for t in inputs]
        # two activations multiplied (Q K^T, weights x V) or a fused attention kernel: positions mix
        mixes = packet in ATTENTION_OPS or (
            packet in MATMUL_OPS and all(id(t) in self.info for t in matmul_operands(packet, args))
        )
        if in_infos:
            info = self._propagate(packet, args, kwargs, in_infos, first, mixes)
            # every piece of unbind / split / chunk (q, k, v = qkv.unbind(0)) carries the input's lineage
            for t in tensors_in(out) if isinstance(out, (tuple, list)) else [first]:
                self._set(t, info)
        macs, flops = op_cost(func, args, kwargs, first)
        if flops:
            row = self._charge(packet, macs, flops, first, in_place=any(first is t for t in tensors_in(args)))
            if mixes and self.global_from is None and any(i.rf is not None for i in in_infos):
                self.global_from = row.name
        return out

    def _propagate(self, packet, args, kwargs, in_infos, out, mixes: bool) -> _TensorInfo:
        # depth counts layers with weights: a conv, or a matmul with a weight operand (not Q K^T)
        weighted = packet is aten.convolution or (packet in MATMUL_OPS and not mixes)
        depth = max(i.depth for i in in_infos) + (1 if weighted else 0)
        if any(i.tokens for i in in_infos):
            return _TensorInfo(self._token_field(packet, args, kwargs, in_infos, mixes), depth, tokens=True)
        if out.dim() != 4:
            x = args[0] if args and isinstance(args[0], torch.Tensor) else None
            info = self.info_of(x)
            # (B, C, H, W) -> (B, C, H*W): flatten(2) makes one token per position, each keeping its
            # field; any other flattening (a classifier's (B, C*H*W)) feeds layers that see everything
            if info is not None and x.dim() == 4 and tuple(out.shape) == (x.shape[0], x.shape[1], x.shape[2] * x.shape[3]):
                return _TensorInfo(info.rf, depth, tokens=True)
            return _TensorInfo(None, depth)
        rf = widest([i.rf for i in in_infos])
        if rf is None:
            return _TensorInfo(None, depth)
        x = args[0]
        if packet is aten.convolution:
            stride, padding, dilation, transposed = args[3], args[4], args[5], args[6]
            kernel = tuple(args[1].shape[2:])
            if transposed:
                rf = rf.through_transposed(kernel, stride, padding, dilation)
            else:
                rf = rf.through(kernel, stride, padding, dilation)
        elif packet in MAX_POOL_OPS or packet in AVG_POOL_OPS:
            kernel = arg(args, kwargs, 1, "kernel_size")
            stride = arg(args, kwargs, 2, "stride", None) or kernel  # [] means stride = kernel
            padding = arg(args, kwargs, 3, "padding", 0)
            dilation = arg(args, kwargs, 4, "dilation", 1) if packet in MAX_POOL_OPS else 1
            rf = rf.through(kernel, stride, padding, dilation)
        elif packet is aten.slice and x.dim() == 4:  # x[:, :, ::2, ::2] subsamples: the jump grows
            dim = arg(args, kwargs, 1, "dim", 0) % 4
            begin = arg(args, kwargs, 2, "start", 0) or 0
            step = arg(args, kwargs, 4, "step", 1) or 1
            if dim >= 2:
                rf = rf.sliced(dim - 2, max(begin, 0), step)
        elif packet is aten.constant_pad_nd and len(args[1]) >= 2:  # spatial padding shifts the grid
            pads = list(args[1]) + [0, 0]
            rf = rf.sliced(1, -pads[0], 1).sliced(0, -pads[2], 1)
        elif packet in ADAPTIVE_POOL_OPS or packet is aten.mean:
            if out.shape[-2:] == (1, 1) and x.shape[-2:] != (1, 1):
                return _TensorInfo(None, depth)  # global pooling
            if packet is not aten.mean:
                windows = [adaptive_window(i, o) for i, o in zip(x.shape[-2:], out.shape[-2:])]
                rf = rf.through([k for k, _ in windows], [s for _, s in windows])
        return _TensorInfo(rf, depth)

    def _token_field(self, packet, args, kwargs, in_infos, mixes: bool) -> ReceptiveField | None:
        """Each token's field: kept by per-token work (linear layers, norms, activations, views),
        global (None) once attention mixed the tokens, and from then on wherever that result flows."""
        if mixes or any(i.tokens and i.rf is None for i in in_infos):
            return None
        x = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if packet in (aten.mean, aten.sum) and x is not None:
            dims = arg(args, kwargs, 1, "dim", None)
            dims = [dims] if isinstance(dims, int) else list(dims or range(x.dim()))
            if any(d % x.dim() != x.dim() - 1 for d in dims):
                return None  # pooling over tokens
        return widest([i.rf for i in in_infos])

    def _charge(self, packet, macs: int, flops: int, out: torch.Tensor, in_place: bool) -> LayerStats:
        call = self.stack[-1] if self.stack else None
        if call is not None and call.leaf:
            call.row.macs += macs
            call.row.flops += flops
            return call.row
        # work done in a container's own forward (or outside any module): a row of its own
        op = packet.__name__.split(".")[-1].rstrip("_").lstrip("_")
        owner = call.name if call is not None else "(model)"
        row = LayerStats(self._unique(f"{owner}.{op}" if owner != "(model)" else op), op)
        row.macs, row.flops = macs, flops
        row.output_shape = tuple(out.shape)
        row.activation_bytes = 0 if in_place else out.numel() * out.element_size()
        info = self.info_of(out)
        if info is not None:
            row.receptive_field, row.depth = info.rf, info.depth
        self.rows.append(row)
        return row

    def _set(self, t: torch.Tensor, info: _TensorInfo) -> None:
        self.info[id(t)] = info
        self.keep_alive.append(t)

    def _unique(self, name: str) -> str:
        n = self.row_names.get(name, 0) + 1
        self.row_names[name] = n
        return name if n == 1 else f"{name}#{n}"
