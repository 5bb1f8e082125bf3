"""`--runtime auto`: measure every runtime on this machine once, keep the faithful ones, pick the fastest.

On first use per (CPU flags, model, weights, embedding head, batch size, threads, library versions), each
available (runtime, precision) runs a calibration batch of real photos. A candidate is kept only
when its outputs match PyTorch eager fp32 on that batch (the thresholds are `PARITY`); the fastest
kept one wins. The decision is cached, and one line says what was chosen and why.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ReslabError
from . import cache
from . import threads as thread_policy
from .pooling import EmbeddingHead
from .runtimes import RuntimeChoice, Session, build_session, candidates

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Parity:
    """How close a runtime's outputs must be to the fp32 reference to be used."""

    min_cosine: float = 0.999  # of the embeddings (pooled features), image by image
    same_top1: bool = True  # the arg-max of the logits, image by image


PARITY = Parity()
MAX_CALIBRATION_BATCH = 32  # bigger batches are timed at 32 images: CPU throughput has levelled off by then
TIMED_ROUNDS = 3  # round-robin over the candidates, best of each: a load spike hits them alike
SETTLE_S = 0.05  # a pause before each timed run: the previous runtime's idle threads stop spinning
OUT_OF_THE_RACE = 2.0  # after the first round, a candidate this many times slower than the best is not timed again
DECISIONS = "decisions"
# Runtimes that auto does not try unless asked by name, and why (docs/inference.md has the numbers).
NOT_IN_AUTO = {"torch-compile": "it compiles again in every process (minutes on a CPU core), so a one-off command would pay that each time"}


@dataclass
class Measurement:
    choice: str
    images_per_s: float | None
    cosine: float | None
    top1_agreement: float | None
    accepted: bool
    note: str = ""


def choose_session(loaded, *, batch_size: int, head: EmbeddingHead | None = None, runtime: str | None = None,
                   precision: str | None = None, threads: int | None = None, say=None, remeasure: bool = False) -> Session:
    """The session `auto` picks (narrowed to `runtime` / `precision` when given): cached, or measured now.

    say: where the one-line explanation goes (default: the log at INFO).
    remeasure: ignore a cached decision and measure again (the new one replaces it).
    """
    say = say or log.info
    device = "cpu" if not loaded.is_torch else str(next(loaded.network.parameters()).device)
    options = candidates(device, exported=not loaded.is_torch, runtime=runtime, precision=precision)
    if runtime is None:
        options = [c for c in options if c.runtime not in NOT_IN_AUTO]
    if not options:
        raise ReslabError(f"no runtime{f' {runtime}' if runtime else ''}{f' in {precision}' if precision else ''} is available here; "
                          "use --runtime auto without --precision, or install onnxruntime / openvino")
    batch = max(1, min(int(batch_size), MAX_CALIBRATION_BATCH))
    key = decision_key(loaded, head, batch, device, threads, options)
    path = cache.cache_root() / DECISIONS / f"{loaded.name}-{cache.key_digest(key)}.json"
    record = cache.read_json(path)
    if record is not None and record.get("key") == _jsonable(key) and not remeasure:
        chosen = next((c for c in options if str(c) == record.get("choice")), None)
        if chosen is not None:
            session = build_session(loaded, chosen, head, threads)
            say(f"runtime auto: {chosen} for {loaded.name} at batch {batch} ({record.get('why')}; measured {record.get('created')}, cached in {path})")
            return session
    session, measurements = calibrate(loaded, options, batch, head, threads)
    why = explain(session.choice, measurements)
    from ..provenance import cores as usable_cores

    load, cores = _load_average(), usable_cores()
    if load is not None and load > cores:
        why += f"; the machine was busy (load {load:.1f} on {cores} cores): delete {path.name} to measure again when it is quiet"
    cache.write_json(path, {"key": _jsonable(key), "choice": str(session.choice), "why": why,
                            "measurements": [m.__dict__ for m in measurements], "created": time.strftime("%Y-%m-%d %H:%M"),
                            # other processes' load while it ran: a busy machine makes multi-threaded timings noisy
                            "load_average_1min": _load_average()})
    say(f"runtime auto: {session.choice} for {loaded.name} at batch {batch} ({why}; measured now, cached in {path})")
    return session


def calibrate(loaded, options: list[RuntimeChoice], batch: int, head: EmbeddingHead | None, threads: int | None) -> tuple[Session, list[Measurement]]:
    """Time every option on a calibration batch; the fastest one within `PARITY` of the reference."""
    x = calibration_batch(loaded.preprocess, batch)
    reference_choice = RuntimeChoice("torch", "fp32") if loaded.is_torch else RuntimeChoice("onnxruntime", "fp32")
    reference = build_session(loaded, reference_choice, head, threads)
    expected = reference.run(x)
    sessions: dict[str, Session] = {str(reference_choice): reference}
    measurements: dict[str, Measurement] = {}
    for choice in options:
        name = str(choice)
        try:
            session = sessions.get(name) or build_session(loaded, choice, head, threads)
            got = session.run(x)  # also the warm-up: first-call allocations, compilation
        except ReslabError as e:
            measurements[name] = Measurement(name, None, None, None, False, str(e))
            continue
        cosine, agreement = parity(expected, got)
        ok = cosine >= PARITY.min_cosine and (agreement == 1.0 or not PARITY.same_top1)
        measurements[name] = Measurement(name, None, cosine, agreement, ok, "" if ok else "outputs differ from fp32")
        if ok:
            sessions[name] = session
    timed = {name: sessions[name] for name, m in measurements.items() if m.accepted}
    if not timed:
        raise ReslabError(f"no runtime reproduced the fp32 outputs of {loaded.name}: " + "; ".join(f"{m.choice}: {m.note}" for m in measurements.values()))
    best: dict[str, float] = {name: float("inf") for name in timed}
    for round_ in range(TIMED_ROUNDS):
        for name, session in timed.items():
            time.sleep(SETTLE_S)
            t0 = time.perf_counter()
            session.run(x)
            best[name] = min(best[name], time.perf_counter() - t0)
        if round_ == 0:  # the slow ones cannot win: spend the remaining rounds on the contenders
            fastest = min(best.values())
            timed = {name: s for name, s in timed.items() if best[name] <= OUT_OF_THE_RACE * fastest}
    for name, seconds in best.items():
        measurements[name].images_per_s = batch / seconds
    winner = min(best, key=best.get)
    return sessions[winner], list(measurements.values())


def parity(expected: tuple[np.ndarray, np.ndarray], got: tuple[np.ndarray, np.ndarray]) -> tuple[float, float]:
    """(smallest per-image cosine of the embeddings, fraction of images with the same top-1)."""
    a, b = expected[0].astype(np.float64), got[0].astype(np.float64)
    if a.shape != b.shape or not np.all(np.isfinite(b)):
        return -1.0, 0.0
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    agreement = float(np.mean(expected[1].argmax(1) == got[1].argmax(1)))
    return float(cos.min()), agreement


def explain(chosen: RuntimeChoice, measurements: list[Measurement]) -> str:
    rates = {m.choice: m.images_per_s for m in measurements if m.images_per_s}
    base = rates.get("torch fp32")
    runner_up = sorted(((r, n) for n, r in rates.items() if n != str(chosen)), reverse=True)
    parts = [f"{rates[str(chosen)]:.1f} images/s"]
    if base and str(chosen) != "torch fp32":
        parts.append(f"{rates[str(chosen)] / base:.2f}x torch fp32")
    if runner_up:
        parts.append(f"next {runner_up[0][1]} {runner_up[0][0]:.1f}")
    rejected = [m.choice for m in measurements if not m.accepted]
    if rejected:
        parts.append(f"rejected {', '.join(rejected)}")
    return ", ".join(parts)


def decision_key(loaded, head: EmbeddingHead | None, batch: int, device: str, threads, options: list[RuntimeChoice]) -> dict:
    return {"cpu": cpu_signature(), "device": device, "model": loaded.name, "weights_sha256": loaded.weights_sha256,
            **(head or EmbeddingHead()).key(), "batch": batch, "threads": threads or thread_policy.intra_op_threads(),
            "options": sorted(str(c) for c in options), "versions": library_versions(), "parity": PARITY.__dict__}


def cpu_signature() -> dict:
    """The CPU model and the instruction-set flags that decide which kernels run."""
    from ..provenance import cpu

    model, flags = cpu()
    return {"model": model, "machine": platform.machine(), "flags": list(flags)}


def library_versions() -> dict:
    import importlib.metadata as md

    out = {}
    for name in ("torch", "onnxruntime", "openvino"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def calibration_batch(preprocess, batch: int) -> np.ndarray:
    """`batch` real photos (bundled with scikit-image and scikit-learn), preprocessed: (B, C, H, W) float32."""
    from PIL import ImageOps

    from ..sample_photos import bundled_photos

    photos = list(bundled_photos().values())
    images = []
    for i in range(batch):
        im = photos[i % len(photos)]
        if (i // len(photos)) % 2:
            im = ImageOps.mirror(im)
        if (i // len(photos)) >= 2:  # later rounds: crops of other regions, so no two inputs are equal
            w, h = im.size
            f = 0.1 * ((i // len(photos)) % 4)
            im = im.crop((int(w * f), int(h * f), w, h))
        images.append(preprocess(im).numpy())
    return np.stack(images).astype(np.float32)


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _jsonable(key: dict) -> dict:
    import json

    return json.loads(json.dumps(key, sort_keys=True, default=str))
