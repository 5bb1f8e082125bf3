"""Real `reslab` processes for the signal tests: started in a session of their own (so a signal to
their process group is exactly what `timeout`, `kill -- -PGID` or a scheduler sends), optionally
paused at a named point (see pause_driver) while the test signals them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.process_tools import kill_group, processes_in_group

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 240  # generous: the shared CI machine may be slow; a healthy run takes seconds


@dataclass
class Outcome:
    returncode: int
    output: str
    left_behind: list[int]  # live processes of the run's group after it ended


def environment() -> dict:
    paths = [str(REPO / "src"), str(REPO)]
    # one thread everywhere: runs compared bit for bit must reduce in the same order
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run(args: list[str], folder: Path, pause: tuple[str, int] | None = None, send: str | None = None) -> Outcome:
    """Run `reslab ARGS`; with `pause` = (point, n), wait there and deliver `send`:
    SIGINT, SIGTERM or SIGKILL to the main process, or SIGINT-group / SIGTERM-group / SIGKILL-group."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("paused", "go"):
        (folder / name).unlink(missing_ok=True)
    if pause is None:
        cmd = [sys.executable, "-m", "reslab", *args]
    else:
        cmd = [sys.executable, "-m", "tests.faults.pause_driver", pause[0], str(pause[1]), str(folder), "--", *args]
    log = folder / "output.txt"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=environment(), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        if pause is not None:
            _wait_for(folder / "paused", proc, log)
            _deliver(proc.pid, send)
            (folder / "go").touch()
        proc.wait(timeout=WAIT_S)
        return Outcome(proc.returncode, log.read_text(errors="replace"), processes_in_group(proc.pid, wait=10))
    finally:
        kill_group(proc.pid)


def _wait_for(marker: Path, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (status {proc.returncode}) before its pause:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"the run never reached its pause:\n{log.read_text()[-3000:]}")
        time.sleep(0.02)
    while not marker.read_text():  # the pid is written just after the file is created
        time.sleep(0.01)


def _deliver(pid: int, send: str) -> None:
    name, _, scope = send.partition("-")
    signum = getattr(signal, name)
    if scope == "group":
        os.killpg(pid, signum)
    else:
        os.kill(pid, signum)
