"""`reslab bench infer MODEL --batch N`: every runtime x precision side by side, in one process.

For each (runtime, precision): images/s, the ratio to torch eager fp32, the cosine and top-1
agreement with fp32 on the same real photos, the one-time preparation (export, compilation), and
the achieved GFLOP/s against the matmul peak of this CPU measured in the same run (fp32 and bf16
square matrix products, `torch.mm` or OpenVINO's MatMul, whichever is faster), so a figure says how
far from the hardware's limit it is.
The default path (what `--runtime auto` picks, measured or read from the cache) is reported
against the fastest runtime measured here.
"""

from __future__ import annotations

import time

import numpy as np

from .auto import PARITY, SETTLE_S, calibration_batch, choose_session, library_versions, parity
from .runtimes import RuntimeChoice, build_session, candidates


class MatmulPeak:
    """GFLOP/s of a square matrix product in one dtype, best of every `measure` call.

    On the CPU the product is timed with `torch.mm` and, when OpenVINO is installed, with an
    OpenVINO MatMul (oneDNN's JIT kernels), and the faster counts: PyTorch's fp32 `mm` goes through
    MKL, which on AMD CPUs takes a path that reaches half the AVX-512 peak (215 GFLOP/s on 2 Zen 5
    cores where the runtimes' convolutions reached 450). Timed between the runtimes' rounds as well
    as before them, so that a load spike from another process does not set the peak.
    """

    def __init__(self, dtype: str, device: str = "cpu"):
        import torch

        size = 2048 if device == "cpu" else 8192  # big enough to reach the peak, small enough to take ~0.1 s
        torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
        g = torch.Generator().manual_seed(0)
        self.a = torch.randn(size, size, generator=g).to(device=device, dtype=torch_dtype)
        self.b = torch.randn(size, size, generator=g).to(device=device, dtype=torch_dtype)
        self.device, self.flops, self.best = device, 2 * size**3, float("inf")
        self.openvino = _openvino_matmul(self.a.float().numpy(), self.b.float().numpy(), dtype) if device == "cpu" else None
        self._once()  # warm-up: oneDNN/MKL/cuBLAS pick and pack kernels

    def _once(self) -> float:
        import torch

        t0 = time.perf_counter()
        torch.mm(self.a, self.b)
        if self.device != "cpu":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - t0
        if self.openvino is not None:
            t0 = time.perf_counter()
            self.openvino()
            seconds = min(seconds, time.perf_counter() - t0)
        return seconds

    def measure(self, seconds: float) -> float:
        deadline = time.perf_counter() + seconds
        while True:
            self.best = min(self.best, self._once())
            if time.perf_counter() >= deadline:
                return self.gflops

    @property
    def gflops(self) -> float:
        return self.flops / self.best / 1e9


def _openvino_matmul(a: np.ndarray, b: np.ndarray, dtype: str):
    """A callable running a @ b (b a constant) on OpenVINO's CPU plugin in `dtype`, or None without OpenVINO."""
    from .runtimes import unavailable_reason

    if unavailable_reason("openvino") is not None:
        return None
    import openvino as ov
    import openvino.opset13 as ops

    from .signal_stack import keep_signal_stack
    from .threads import intra_op_threads

    x = ops.parameter(list(a.shape), ov.Type.f32, name="a")
    model = ov.Model([ops.matmul(x, ops.constant(b), False, False)], [x], "matmul_peak")
    config = {"INFERENCE_PRECISION_HINT": "bf16" if dtype == "bf16" else "f32", "PERFORMANCE_HINT": "LATENCY",
              "INFERENCE_NUM_THREADS": intra_op_threads()}
    try:
        with keep_signal_stack():
            compiled = ov.Core().compile_model(model, "CPU", config)
            request = compiled.create_infer_request()
    except Exception:  # noqa: BLE001 - no bf16 on this CPU, or another plugin refusal: torch's number stands
        return None
    if dtype == "bf16" and "bf" not in str(compiled.get_property("INFERENCE_PRECISION_HINT")).lower():
        return None
    a = np.ascontiguousarray(a, dtype=np.float32)
    return lambda: request.infer({0: a})


def matmul_peak(dtype: str, device: str = "cpu", seconds: float = 1.5) -> float:
    """GFLOP/s of `torch.mm` on square matrices in `dtype` (the CPU with the current intra-op threads)."""
    return MatmulPeak(dtype, device).measure(seconds)


def model_gflops(loaded) -> float | None:
    """GFLOPs of one image's forward pass (2 x multiply-adds, counted on the meta device)."""
    if not loaded.is_torch:
        return None
    from ..analysis.profile import profile_model

    p = loaded.preprocess
    return profile_model(loaded.network, (p.channels, p.crop, p.crop)).flops / 1e9


def bench_infer(loaded, batch: int = 32, rounds: int = 3, include_compile: bool = True, say=print) -> dict:
    """The side-by-side table for `loaded` at batch size `batch` (see the module docstring)."""
    import torch

    from .threads import apply_torch_threads

    threads = apply_torch_threads()
    device = "cpu" if not loaded.is_torch else str(next(loaded.network.parameters()).device)
    x = calibration_batch(loaded.preprocess, batch)
    timers = {p: MatmulPeak(p, device) for p in ("fp32", "bf16")}
    say("matmul peak here: " + ", ".join(f"{p} {t.measure(1.5):.0f} GFLOP/s" for p, t in timers.items()))
    flops = model_gflops(loaded)
    reference_choice = RuntimeChoice("torch", "fp32") if loaded.is_torch else RuntimeChoice("onnxruntime", "fp32")
    options = [c for c in candidates(device, exported=not loaded.is_torch) if include_compile or c.runtime != "torch-compile"]
    options.sort(key=lambda c: c != reference_choice)  # the reference first
    sessions, rows = {}, {}
    expected = None
    for choice in options:
        name = str(choice)
        t0 = time.perf_counter()
        try:
            session = build_session(loaded, choice)
            got = session.run(x)  # the first call: compilation and allocations count as preparation
        except Exception as e:  # noqa: BLE001 - one runtime failing must not hide the others' numbers
            rows[name] = {"runtime": choice.runtime, "precision": choice.precision, "error": str(e).splitlines()[0]}
            say(f"  {name:>22}: failed ({rows[name]['error']})")
            continue
        if expected is None:
            expected = got
        cosine, top1 = parity(expected, got)
        sessions[name] = session
        rows[name] = {"runtime": choice.runtime, "precision": choice.precision, "prepare_s": time.perf_counter() - t0,
                      "cosine_vs_fp32": cosine, "top1_agreement": top1,
                      "passes_parity": cosine >= PARITY.min_cosine and (top1 == 1.0 or not PARITY.same_top1)}
        say(f"  {name:>22}: ready in {rows[name]['prepare_s']:.1f} s, cosine {cosine:.5f}, top-1 agreement {top1:.2f}")
    best = {name: float("inf") for name in sessions}
    for _ in range(rounds):  # round-robin: a load spike from another process hits every runtime alike
        for name, session in sessions.items():
            time.sleep(SETTLE_S)  # the previous runtime's (or the matmul's) idle threads stop spinning
            t0 = time.perf_counter()
            session.run(x)
            best[name] = min(best[name], time.perf_counter() - t0)
        for timer in timers.values():  # the peak too, between the rounds
            timer.measure(0.3)
    peaks = {p: t.gflops for p, t in timers.items()}
    base = batch / best[str(reference_choice)] if str(reference_choice) in best else None
    for name, seconds in best.items():
        row = rows[name]
        row["images_per_s"] = batch / seconds
        row["vs_torch_fp32"] = row["images_per_s"] / base if base else None
        if flops:
            row["gflops_per_s"] = row["images_per_s"] * flops
            peak = peaks.get(row["precision"])
            row["fraction_of_matmul_peak"] = row["gflops_per_s"] / peak if peak else None

    lines = []
    # measured now, as a first run would: a decision cached under other conditions says nothing of this run
    chosen = choose_session(loaded, batch_size=batch, say=lines.append, remeasure=True)
    default = str(chosen.choice)
    faithful = {n: r["images_per_s"] for n, r in rows.items() if "images_per_s" in r and r["passes_parity"]}
    measured = {n: r["images_per_s"] for n, r in rows.items() if "images_per_s" in r}
    fastest, fastest_faithful = max(measured, key=measured.get), max(faithful, key=faithful.get)
    return {
        "benchmark": "infer",
        "model": loaded.name,
        "source": loaded.source,
        "batch": batch,
        "threads": threads,
        "device": device,
        "rows": rows,
        "model_gflops_per_image": flops,
        "matmul_peak_gflops": peaks,
        "parity": PARITY.__dict__,
        "default_path": {
            "choice": default,
            "auto_line": lines[0] if lines else None,
            "images_per_s": measured.get(default),
            "fastest": fastest,
            "fastest_faithful": fastest_faithful,
            "over_fastest": measured.get(default, 0) / measured[fastest],
            "over_fastest_faithful": measured.get(default, 0) / faithful[fastest_faithful],
        },
        # the machine, its CPU flags and load come with the saved JSON (reslab.provenance)
        "versions": library_versions(),
        "torch_threads": torch.get_num_threads(),
    }


def format_table(result: dict) -> str:
    lines = [f"{result['source']}, batch {result['batch']}, {result['threads']} threads, "
             f"{result['model_gflops_per_image'] or 0:.2f} GFLOPs/image" if result["model_gflops_per_image"] else
             f"{result['source']}, batch {result['batch']}, {result['threads']} threads"]
    peaks = result["matmul_peak_gflops"]
    if peaks:
        lines.append("matmul peak (same run): " + ", ".join(f"{p} {v:.0f} GFLOP/s" for p, v in peaks.items()))
    lines.append(f"{'runtime':>22}  {'images/s':>9}  {'vs fp32':>7}  {'cosine':>8}  {'top-1':>5}  {'GFLOP/s':>8}  {'% peak':>6}  {'prepare s':>9}")
    for name, r in result["rows"].items():
        if "error" in r:
            lines.append(f"{name:>22}  failed: {r['error']}")
            continue
        if "images_per_s" not in r:
            continue
        gf = f"{r['gflops_per_s']:8.0f}" if r.get("gflops_per_s") else f"{'':>8}"
        pk = f"{100 * r['fraction_of_matmul_peak']:5.0f}%" if r.get("fraction_of_matmul_peak") else f"{'':>6}"
        mark = "" if r["passes_parity"] else "  (fails parity)"
        lines.append(f"{name:>22}  {r['images_per_s']:9.1f}  {r['vs_torch_fp32'] or 0:6.2f}x  {r['cosine_vs_fp32']:8.5f}  "
                     f"{r['top1_agreement']:5.2f}  {gf}  {pk}  {r['prepare_s']:9.1f}{mark}")
    d = result["default_path"]
    lines.append(f"default path (--runtime auto): {d['choice']}, {d['over_fastest']:.2f}x the fastest ({d['fastest']}), "
                 f"{d['over_fastest_faithful']:.2f}x the fastest within parity ({d['fastest_faithful']})")
    return "\n".join(lines)
