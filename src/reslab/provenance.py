"""Where a number came from: the code version, the machine, the command; and where benchmarks go.

Every run's `meta.json`, every experiment's `results.json` and every benchmark's JSON carry these
records, written by the functions below (one place, one set of key names):

- `code_version()`: reslab's version and the git commit (with `-dirty` for local changes);
- `machine()`: Python, torch, host, CPU model and the flags that decide speed (AVX-512, bf16, AMX),
  cores this process may use, torch threads, GPU, and the load average (other work on the cores);
- `record(command)`: both, with the command line and the time;
- `bench_results_dir()`: the one setting for where benchmark JSON goes (`RESLAB_BENCH_RESULTS`,
  default `benchmarks/results`), and `save_benchmark(name, result)` to write there atomically.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

from .fileio import atomic_write_text

BENCH_RESULTS_ENV = "RESLAB_BENCH_RESULTS"
DEFAULT_BENCH_RESULTS = Path("benchmarks/results")
# the CPU flags that change which kernels (and so which speed) a run gets
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx512_fp16", "amx_bf16", "amx_int8", "amx_tile")


def bench_results_dir() -> Path:
    """Where benchmark JSON goes: $RESLAB_BENCH_RESULTS, else benchmarks/results (relative to the working directory)."""
    return Path(os.environ.get(BENCH_RESULTS_ENV) or DEFAULT_BENCH_RESULTS)


@functools.cache
def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if head.returncode != 0 or not head.stdout.strip():
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()  # fmt: skip
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def code_version() -> dict:
    """{'reslab': version, 'git_commit': sha (+'-dirty') or None outside a checkout}."""
    from . import __version__

    return {"reslab": __version__, "git_commit": _git_commit()}


def cpu() -> tuple[str, tuple[str, ...]]:
    """The CPU model and which of `SPEED_FLAGS` it has (what decides which kernels run)."""
    return _cpu()


@functools.cache
def _cpu() -> tuple[str, tuple[str, ...]]:
    model, flags = platform.processor() or platform.machine(), ()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                present = set(value.split())
                flags = tuple(f for f in SPEED_FLAGS if f in present)
    except OSError:  # not Linux
        pass
    return model, flags


def cores() -> int:
    """CPU cores this process may use (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def machine() -> dict:
    """The machine a number was measured on, and how busy it was."""
    import torch

    model, flags = _cpu()
    info = {
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": model,
        "cpu_flags": list(flags),
        "cores": cores(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    if hasattr(os, "getloadavg"):  # other processes' load while it ran: read the ratios, not the absolutes
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return info


def command_line() -> str:
    """The command that is running, as a user would type it."""
    if Path(sys.argv[0]).name in ("reslab", "__main__.py"):  # the entry point or `python -m reslab`
        return shlex.join(["reslab", *sys.argv[1:]])
    return shlex.join(sys.argv)


def record(command: str | None = None) -> dict:
    """Code version, machine, command and time: what a saved number needs beside it."""
    return {
        "command": command or command_line(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **code_version(),
        "machine": machine(),
    }


def save_benchmark(name: str, result: dict, out_dir: str | Path | None = None, command: str | None = None) -> Path:
    """Write `result` and its provenance to OUT_DIR/NAME.json atomically; returns the path."""
    path = Path(out_dir or bench_results_dir()) / f"{name}.json"
    payload = {**result, "provenance": record(command or result.get("command"))}
    atomic_write_text(path, json.dumps(payload, indent=2, default=str) + "\n")
    return path
