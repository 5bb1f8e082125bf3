"""How the cores are shared between the network and image decoding.

The policy (docs/inference.md, "Threads", has the measurement behind it):
- the network gets one intra-op thread per physical core the process may use (PyTorch, ONNX
  Runtime and OpenVINO alike): a batch is one large parallel job, and a second hyper-thread on a
  core adds no multiply-add units;
- image decoding: by default (`decode_workers`) in the process itself between batches on a
  machine of up to 2 physical cores, where a worker process only takes time slices from the
  network's threads; with more cores, one decode worker process per 4 cores (at most 8). Workers
  (`--workers N`) run one thread each (`OMP_NUM_THREADS=1`, see `reslab.search.embed`) and a
  bounded window ahead of the network, so they never multiply threads beyond the cores.
`RESLAB_THREADS` overrides the intra-op thread count (e.g. to leave cores to another job);
`benchmarks/threads_policy.py` measures the alternatives (fewer network threads, decoding in
this process, in a thread of it, or in 1-2 workers) against the network alone.
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


# Up to this many physical cores, `embed` decodes in its own process by default: measured on 2 cores
# (benchmarks/results/threads_policy_*.json, docs/inference.md "Threads").
IN_PROCESS_DECODE_UP_TO = 2
CORES_PER_DECODE_WORKER = 4  # beyond that: one worker per 4 cores (not measured here: 2 cores only)
MAX_DECODE_WORKERS = 8


def decode_workers(cores: int | None = None) -> int:
    """Decode worker processes for `embed` when `--workers` is not given (0 = in this process).

    cores: physical cores this process may use (default: counted). Up to IN_PROCESS_DECODE_UP_TO
    cores the network has every core and a worker process can only preempt its threads (each
    batch then waits for its slowest thread), so decoding between batches is fastest; above, the
    network's speed grows less than linearly with its threads while one decoding thread stays
    as slow as it was, so decoding moves to workers, one per CORES_PER_DECODE_WORKER cores.
    """
    cores = physical_cores() if cores is None else max(1, int(cores))
    if cores <= IN_PROCESS_DECODE_UP_TO:
        return 0
    return max(1, min(MAX_DECODE_WORKERS, cores // CORES_PER_DECODE_WORKER))
