"""`train.compile`: when to train through `torch.compile`, decided by measurement.

Compiling costs minutes on a small CPU and pays back only over a long enough run, by a speed-up
that depends on the model, the shapes, the precision and the machine. So `auto` measures:

1. It trains the first `EAGER_WARMUP + EAGER_TIMED` steps eagerly, timing the last EAGER_TIMED.
2. It projects the remaining eager time R = step time x remaining steps, and looks up this
   machine's record of an earlier compile of the same setup (model, batch, image size, precision,
   memory format, device, threads, torch, CPU) in ~/.cache/reslab/compile.json: compile seconds C
   and the speed-up S it measured. Without a record it assumes C = DEFAULT_COMPILE_S and
   S = DEFAULT_SPEEDUP (the record replaces the guesses after the first compile).
3. It compiles when the time saved, R (1 - 1/S), exceeds PAYBACK x C. A record whose speed-up
   was below MIN_SPEEDUP means never for that setup.
4. After compiling it times COMPILED_TIMED steps, writes the record, and goes back to eager for
   the rest of the run if the compiled steps were not faster.

`on` compiles from the first step (and records the same figures); `off` never compiles. A compile
that fails (no C++ compiler, an unsupported op) falls back to eager with a warning: the failed step
is undone (weights, buffers, gradients) and rerun, so the run stays correct. The decision is saved
in every checkpoint, and a resumed run follows it.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from pathlib import Path

import torch
from torch import nn

from ..fileio import atomic_write_text

log = logging.getLogger(__name__)
EAGER_WARMUP, EAGER_TIMED, COMPILED_TIMED = 2, 5, 5
DEFAULT_COMPILE_S = 120.0  # first-time guess for a CIFAR/ImageNet ResNet on a few CPU cores
DEFAULT_SPEEDUP = 1.2
PAYBACK = 2.0  # compile only when it saves at least twice what it costs
MIN_SPEEDUP = 1.03


def records_path() -> Path:
    root = os.environ.get("RESLAB_CACHE") or Path.home() / ".cache" / "reslab"
    return Path(root) / "compile.json"


def setup_key(model_name: str, options: dict, batch: int, image_size: int, amp: str, channels_last: bool,
              device: torch.device) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    parts = [model_name, json.dumps(options, sort_keys=True), f"b{batch}", f"{image_size}px", amp,
             "cl" if channels_last else "nchw", device.type, f"t{torch.get_num_threads()}", torch.__version__, cpu]
    return "|".join(parts)


def read_record(key: str) -> dict | None:
    try:
        return json.loads(records_path().read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None


def write_record(key: str, record: dict) -> None:
    path = records_path()
    try:
        records = json.loads(path.read_text()) if path.is_file() else {}
        if not isinstance(records, dict):
            records = {}
    except (OSError, ValueError):
        records = {}
    records[key] = record
    try:
        atomic_write_text(path, json.dumps(records, indent=1) + "\n")
    except OSError as e:  # a read-only home must not stop training
        log.warning("cannot write the compile record %s (%s)", path, e)


class CompilePolicy:
    """Chooses the module a training step runs through (eager or compiled) and times steps.

    `state` is a dict saved in checkpoints: {"compiled": bool | None (undecided), "reason": str}.
    """

    def __init__(self, mode: str, eager_model: nn.Module, key: str, total_steps: int, state: dict | None = None,
                 decide_everywhere=lambda decision: decision):
        self.mode, self.eager_model, self.key, self.total_steps = mode, eager_model, key, total_steps
        self.state = dict(state or {"compiled": None, "reason": ""})
        self.decide_everywhere = decide_everywhere  # DDP: rank 0's decision, broadcast
        self.compiled_model: nn.Module | None = None
        self.eager_times: list[float] = []
        self.compiled_times: list[float] = []
        self.first_compiled_s: float | None = None
        self.load_state_dict(self.state)

    def load_state_dict(self, state: dict | None) -> None:
        """A resumed run's decision (auto keeps it; on and off override it)."""
        self.state = dict(state or {"compiled": None, "reason": ""})
        self.state.setdefault("compiled", None)
        if self.mode == "off":
            self.state.update(compiled=False, reason="train.compile=off")
        elif self.mode == "on":
            self.state.update(compiled=True, reason="train.compile=on")
        self.compiled_model = None
        if self.state["compiled"]:
            self._compile()

    @property
    def model(self) -> nn.Module:
        return self.compiled_model if self.state["compiled"] and self.compiled_model is not None else self.eager_model

    def _compile(self) -> None:
        self.compiled_model = torch.compile(self.eager_model)

    def run_step(self, step_fn, redo=None):
        """`step_fn(module)` through the chosen module, timed. If compiling fails, the step is undone
        (weights, buffers, gradients; `redo()` resets whatever else it needs, e.g. the RNG) and rerun eagerly."""
        compiled_now = self.state["compiled"] and self.first_compiled_s is None
        snapshot = _snapshot(self.eager_model) if compiled_now else None
        t0 = time.perf_counter()
        try:
            result = step_fn(self.model)
        except Exception as e:  # noqa: BLE001 - any compiler failure; training errors re-raise below
            if not compiled_now or type(e).__name__ == "NonFiniteLossError":
                raise
            log.warning("torch.compile failed (%s: %s); training eagerly instead", type(e).__name__, str(e).splitlines()[0] if str(e) else "")
            _restore(self.eager_model, snapshot)
            self.state.update(compiled=False, reason=f"compile failed: {type(e).__name__}")
            self.compiled_model = None
            if redo is not None:
                redo()
            return step_fn(self.eager_model)
        self._observe(time.perf_counter() - t0, compiled_now)
        return result

    def _observe(self, seconds: float, first_compiled: bool) -> None:
        if first_compiled:
            self.first_compiled_s = seconds
            return
        if self.state["compiled"]:
            if self.first_compiled_s is not None and len(self.compiled_times) < COMPILED_TIMED:
                self.compiled_times.append(seconds)
                if len(self.compiled_times) == COMPILED_TIMED:
                    self._judge_compiled()
            return
        if self.state["compiled"] is None:
            self.eager_times.append(seconds)

    def after_step(self, step: int) -> None:
        """Call after optimizer step `step` (1-based): the auto decision happens here."""
        if self.mode != "auto" or self.state["compiled"] is not None:
            return
        if len(self.eager_times) < EAGER_WARMUP + EAGER_TIMED:
            return
        eager_s = sorted(self.eager_times[EAGER_WARMUP:])[EAGER_TIMED // 2]  # the median: robust to a busy machine
        remaining = max(0, self.total_steps - step)
        record = read_record(self.key)
        compile_s = record["compile_s"] if record else DEFAULT_COMPILE_S
        speedup = record["speedup"] if record else DEFAULT_SPEEDUP
        saving = remaining * eager_s * (1 - 1 / speedup)
        source = "this machine's record" if record else "first-time guesses"
        if speedup < MIN_SPEEDUP:
            decision, reason = False, f"compiling was measured {speedup:.2f}x on this setup ({source})"
        elif saving > PAYBACK * compile_s:
            decision, reason = True, (f"saves ~{saving:.0f} s of {remaining * eager_s:.0f} s for ~{compile_s:.0f} s of "
                                      f"compiling at {speedup:.2f}x ({source})")
        else:
            decision, reason = False, (f"would save ~{saving:.0f} s, less than {PAYBACK:g}x its ~{compile_s:.0f} s "
                                       f"of compiling ({source})")
        decision = bool(self.decide_everywhere(decision))
        self.state.update(compiled=decision, reason=reason, eager_step_s=eager_s)
        log.info("train.compile=auto: %s after step %d: %s", "compiling" if decision else "staying eager", step, reason)
        if decision:
            self._compile()

    def _judge_compiled(self) -> None:
        compiled_s = sorted(self.compiled_times)[COMPILED_TIMED // 2]
        eager_s = self.state.get("eager_step_s") or (sorted(self.eager_times)[len(self.eager_times) // 2] if self.eager_times else None)
        compile_s = max(0.0, self.first_compiled_s - compiled_s)
        speedup = eager_s / compiled_s if eager_s else None
        self.state.update(compile_s=compile_s, compiled_step_s=compiled_s, speedup=speedup)
        if speedup is not None:
            write_record(self.key, {"compile_s": compile_s, "speedup": speedup, "eager_step_s": eager_s,
                                    "compiled_step_s": compiled_s, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
            log.info("torch.compile: %.0f s to compile, %.2fx the eager step", compile_s, speedup)
            if self.mode == "auto" and speedup < 1.0:
                decision = bool(self.decide_everywhere(False))
                if not decision:
                    self.state.update(compiled=False, reason=f"compiled steps were slower ({speedup:.2f}x); back to eager")
                    log.info("torch.compile: %s", self.state["reason"])


def _snapshot(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _restore(model: nn.Module, snapshot: dict | None) -> None:
    if snapshot is not None:
        model.load_state_dict(snapshot)
    for p in model.parameters():
        p.grad = None
