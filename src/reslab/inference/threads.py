"""How the cores are shared between the network and image decoding.

The policy (docs/inference.md, "Threads", has the measurement behind it):
- the network gets one intra-op thread per physical core the process may use (PyTorch, ONNX
  Runtime and OpenVINO alike): a batch is one large parallel job, and a second hyper-thread on a
  core adds no multiply-add units;
- decode workers (`--workers`, default 2) run one thread each (`OMP_NUM_THREADS=1`, see
  `reslab.search.embed`) and a bounded window ahead of the network, so they fill the moments the
  network waits on its input without multiplying threads beyond the cores.
`RESLAB_THREADS` overrides the intra-op thread count (e.g. to leave cores to another job);
`benchmarks/threads_policy.py` measures the alternatives (fewer network threads, 0-2 workers,
workers at a lower priority) against the network alone.
"""

from __future__ import annotations

import os
from pathlib import Path


def intra_op_threads() -> int:
    """Threads for one forward pass: RESLAB_THREADS, else one per physical core this process may use
    (a second hyper-thread on a core adds no multiply-add units; PyTorch, ONNX Runtime and OpenVINO
    all default to this too, so every runtime is measured with the same threads)."""
    return requested_threads() or physical_cores()


def requested_threads() -> int | None:
    """RESLAB_THREADS when set to a positive integer, else None."""
    value = os.environ.get("RESLAB_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def physical_cores() -> int:
    """Physical cores among the CPUs this process may use (Linux topology; else the CPU count)."""
    from ..provenance import cores

    try:
        cpus = os.sched_getaffinity(0)
        seen = set()
        for cpu in cpus:
            topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
            seen.add((topology / "physical_package_id").read_text().strip() + ":" + (topology / "core_id").read_text().strip())
        return max(1, len(seen))
    except (AttributeError, OSError):
        return cores()


def apply_torch_threads() -> int:
    """Give PyTorch the policy's intra-op thread count (its default counts physical cores only)."""
    import torch

    n = intra_op_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
