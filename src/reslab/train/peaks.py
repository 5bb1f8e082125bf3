"""This machine's dense-arithmetic peaks, measured (never assumed from the CPU's name).

A training step is mostly convolutions; how close it gets to what the hardware does on one large
convolution (or matrix product) says how much is left to gain. `measure_peaks()` times, in this
process and with its threads:

- a 2048 x 2048 matrix product in fp32 and bf16;
- a 3x3 convolution, batch 256, 256 -> 256 channels on 16 x 16 maps (airbench's middle layer),
  channels_last, in fp32 and bf16, forward only and forward + both backward products.

Each figure is the best of a few repetitions (GFLOP/s, 2 FLOPs per multiply-accumulate).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

REPEATS = 3


def _best_seconds(fn, repeats: int = REPEATS) -> float:
    fn()  # warm-up: oneDNN picks and caches its kernels
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_gflops(dtype: torch.dtype, n: int = 2048, device: str = "cpu") -> float:
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    return 2 * n**3 / _best_seconds(lambda: _sync(a @ b, device)) / 1e9


def conv_gflops(dtype: torch.dtype, backward: bool, batch: int = 256, channels: int = 256, size: int = 16,
                device: str = "cpu") -> float:
    x = torch.randn(batch, channels, size, size, device=device).to(dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(channels, channels, 3, 3, device=device).to(dtype).contiguous(memory_format=torch.channels_last)
    flops = 2 * batch * channels * channels * 9 * size * size
    if not backward:
        return flops / _best_seconds(lambda: _sync(F.conv2d(x, w, padding=1), device)) / 1e9
    x.requires_grad_(True)
    w.requires_grad_(True)
    grad = torch.randn(batch, channels, size, size, device=device).to(dtype).contiguous(memory_format=torch.channels_last)

    def step():
        out = F.conv2d(x, w, padding=1)
        _sync(torch.autograd.grad(out, (x, w), grad)[0], device)

    return 3 * flops / _best_seconds(step) / 1e9


def _sync(t, device: str):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
    return t


def measure_peaks(device: str = "cpu", small: bool = False) -> dict:
    """GFLOP/s of the reference products on `device`; small=True shrinks them (tests)."""
    n, batch, channels = (256, 8, 32) if small else (2048, 256, 256)
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        out[f"matmul_{name}"] = matmul_gflops(dtype, n, device)
        out[f"conv_{name}"] = conv_gflops(dtype, False, batch, channels, device=device)
        out[f"conv_train_{name}"] = conv_gflops(dtype, True, batch, channels, device=device)
    return out
