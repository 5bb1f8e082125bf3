"""The aten ops the profiler knows: their cost in MACs / FLOPs, and shortcuts for their meta outputs.

PyTorch's meta kernels for convolution, batch norm and broadcasting pointwise ops are Python
reference implementations, slower than the whole rest of the profiler; their output shapes are
simple, so `meta_fast_path` makes empty outputs of the right shape instead
(tests/analysis/test_profile.py checks the result against real CPU runs, layer by layer).
"""

from __future__ import annotations

import math

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten
MATMUL_OPS = {aten.mm, aten.addmm, aten.bmm, aten.baddbmm}
BATCH_NORM_OPS = {
    aten.native_batch_norm,
    aten._native_batch_norm_legit,
    aten._native_batch_norm_legit_no_training,
    aten.native_layer_norm,
    aten.native_group_norm,
}
# on meta, batch norm's outputs (out, mean, invstd) are made directly with shapes x, C, C
META_BATCH_NORM_OPS = {aten.native_batch_norm, aten._native_batch_norm_legit, aten._native_batch_norm_legit_no_training}
# float-in, float-out pointwise ops whose meta output is just the broadcast shape (comparisons,
# which return bool, are left to the real kernel)
FAST_POINTWISE_OPS = {
    getattr(aten, name)
    for base in ("add", "sub", "mul", "div", "relu", "hardtanh", "sigmoid", "silu", "gelu", "hardswish", "hardsigmoid", "clamp", "clamp_min", "tanh")
    for name in (base, base + "_")
    if hasattr(aten, name)
}
# fused attention kernels (softmax(Q K^T) V in one op); on meta, scaled_dot_product_attention
# decomposes into two bmm instead, which MATMUL_OPS count the same
ATTENTION_OPS = {
    getattr(aten, name)
    for name in (
        "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_efficient_attention",
        "_scaled_dot_product_cudnn_attention",
        "_scaled_dot_product_fused_attention_overrideable",
    )
    if hasattr(aten, name)
}
MAX_POOL_OPS = {aten.max_pool2d_with_indices, aten.max_pool2d}
AVG_POOL_OPS = {aten.avg_pool2d}
ADAPTIVE_POOL_OPS = {aten._adaptive_avg_pool2d, aten.adaptive_max_pool2d, aten.adaptive_avg_pool2d}


def meta_fast_path(func, packet, args, kwargs):
    """Output of a hot op on meta tensors, made directly; None where the real meta kernel must run.

    Shape errors still raise RuntimeError, which the too-small-input search relies on.
    """
    x = args[0] if args else None
    if not isinstance(x, torch.Tensor) or x.device.type != "meta" or kwargs:
        return None
    if packet in META_BATCH_NORM_OPS:
        stats = torch.empty((x.shape[1],), device="meta", dtype=x.dtype)
        return torch.empty_like(x, memory_format=torch.contiguous_format), stats, torch.empty_like(stats)
    if packet is aten.convolution and not args[6] and x.dim() == 4:
        weight, stride, padding, dilation, groups = args[1], args[3], args[4], args[5], args[8]
        if x.shape[1] != weight.shape[1] * groups:
            raise RuntimeError(f"expected input with {weight.shape[1] * groups} channels, but got {x.shape[1]} channels")
        spatial = []
        for a in range(2):
            size = (x.shape[2 + a] + 2 * padding[a] - dilation[a] * (weight.shape[2 + a] - 1) - 1) // stride[a] + 1
            if size < 1:
                raise RuntimeError(f"calculated output size {size} is too small for input size {tuple(x.shape[2:])}")
            spatial.append(size)
        return torch.empty((x.shape[0], weight.shape[0], *spatial), device="meta", dtype=x.dtype)
    if packet in FAST_POINTWISE_OPS and all(
        not isinstance(a, torch.Tensor) or (a.device.type == "meta" and a.dtype == x.dtype) for a in args
    ):
        shapes = [a.shape for a in args if isinstance(a, torch.Tensor)]
        shape = torch.broadcast_shapes(*shapes)  # raises RuntimeError on a mismatch, as the op would
        if func._schema.is_mutable:
            return x if x.shape == shape else None
        return torch.empty(shape, device="meta", dtype=x.dtype)
    return None


class FastMeta(TorchDispatchMode):
    """Just the meta shortcuts, for the repeated runs of the smallest-input search."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = meta_fast_path(func, func.overloadpacket, args, kwargs or {})
        return func(*args, **(kwargs or {})) if out is None else out


class skip_meta_init(TorchDispatchMode):
    """While building a model on meta, skip its in-place initialisers (normal_, uniform_, fill_, ...):
    meta tensors hold no values, and the meta kernels of random ops are slow Python references."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        tensors = tensors_in(args) + tensors_in(kwargs or {})
        if func._schema.is_mutable and tensors and all(t.device.type == "meta" for t in tensors):
            return args[0]
        return func(*args, **(kwargs or {}))


def op_cost(func, args, kwargs, out: torch.Tensor) -> tuple[int, int]:
    """(macs, flops) of one aten op."""
    packet = func.overloadpacket
    if packet is aten.convolution:
        weight, transposed = args[1], args[6]
        per_output = math.prod(weight.shape[1:])  # (C_in / groups) * kh * kw
        if transposed:  # every input position scatters into a window of the output
            macs = args[0].numel() * weight.shape[1] * math.prod(weight.shape[2:])
        else:
            macs = out.numel() * per_output
        return macs, 2 * macs
    if packet in MATMUL_OPS:
        a, b = matmul_operands(packet, args)
        macs = math.prod(a.shape) * b.shape[-1]
        return macs, 2 * macs
    if packet in ATTENTION_OPS:
        # Q K^T: (B, H, Lq, E) x (B, H, E, Lk); then weights x V: (B, H, Lq, Lk) x (B, H, Lk, Ev)
        q, k, v = args[0], args[1], args[2]
        macs = math.prod(q.shape[:-1]) * k.shape[-2] * (q.shape[-1] + v.shape[-1])
        return macs, 2 * macs
    if packet in BATCH_NORM_OPS:
        return 0, 2 * out.numel()
    if packet in MAX_POOL_OPS or packet in AVG_POOL_OPS:
        kernel = arg(args, kwargs, 1, "kernel_size")
        kh, kw = (kernel[0], kernel[-1]) if isinstance(kernel, (list, tuple)) else (kernel, kernel)
        return 0, out.numel() * kh * kw
    if packet in ADAPTIVE_POOL_OPS or packet is aten.mean:
        return 0, args[0].numel()
    if torch.Tag.pointwise in func.tags:
        return 0, out.numel()
    return 0, 0


def matmul_operands(packet, args) -> tuple[torch.Tensor, torch.Tensor]:
    """The two multiplied tensors of a matmul op (addmm and baddbmm lead with the added term)."""
    return (args[1], args[2]) if packet in (aten.addmm, aten.baddbmm) else (args[0], args[1])


def arg(args, kwargs, index: int, name: str, default=None):
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def tensors_in(obj) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in tensors_in(o)]
    if isinstance(obj, dict):
        return [t for o in obj.values() for t in tensors_in(o)]
    return []


def first_tensor(obj) -> torch.Tensor | None:
    found = tensors_in(obj)
    return found[0] if found else None
