"""Helpers for tests that start real processes: who is left in a process group, and cleaning up."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[-1].split()  # state, ppid, pgrp, ... (the name may hold spaces)


def alive(pid: int) -> bool:
    """Running or sleeping: not gone, and not a zombie waiting to be reaped."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def processes_in_group(pgid: int, wait: float = 0.0) -> list[int]:
    """The live processes of process group `pgid` (Linux /proc), after waiting up to `wait` s for them to go."""
    deadline = time.monotonic() + wait
    while True:
        left = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                fields = _stat_fields(int(entry))
                if fields is not None and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
                    left.append(int(entry))
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


def kill_group(pgid: int) -> None:
    """SIGKILL a process group this test started (cleanup after a failure)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
