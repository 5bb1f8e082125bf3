"""How the cores are shared between the network and image decoding.

The policy (docs/inference.md has the measurement behind it):
- the network gets every core the process may use, as intra-op threads (PyTorch, ONNX Runtime
  and OpenVINO alike): a batch is one large parallel job and any idle core slows it;
- decode workers default to one per core beyond what the network can keep busy while it waits
  on its input, and run at a lower scheduling priority (nice +10), so decoding soaks up the idle
  moments between batches and never takes a core from a running forward pass.
`RESLAB_THREADS` overrides the intra-op thread count.
"""

from __future__ import annotations

import os

DECODE_NICENESS = 10


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. under taskset or a container)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def intra_op_threads() -> int:
    """Threads for one forward pass: RESLAB_THREADS, else every usable core."""
    value = os.environ.get("RESLAB_THREADS", "")
    if value.strip().isdigit() and int(value) > 0:
        return int(value)
    return usable_cores()


def apply_torch_threads() -> int:
    """Give PyTorch the policy's intra-op thread count (its default counts physical cores only)."""
    import torch

    n = intra_op_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def lower_priority() -> None:
    """For decode worker processes: yield the cores to the network whenever it wants them."""
    try:
        os.nice(DECODE_NICENESS)
    except (AttributeError, OSError):  # not permitted or not on this OS: decoding still works
        pass
