"""SIGTERM to a torchrun job's process group (what Slurm's scancel and `kill -- -PGID` send): every
rank gets the signal twice within milliseconds, once from the group and once forwarded by torchrun's
agent. The ranks agree to stop after the same step, rank 0 checkpoints it, no process is left, and
a resumed torchrun run ends with the weights of an uninterrupted one.

Here rank 0 is held inside step 6 while rank 1 waits for it in the stop agreement: the signal
reaches one rank in a step and the other inside a collective, the case that used to cut the stop
short (the forwarded copy counted as a second Ctrl-C, and a rank interrupted inside a collective
left the others waiting)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from reslab.train.checkpoint import load_checkpoint
from tests.process_tools import kill_group, processes_in_group

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform != "linux", reason="Linux process groups")]

TESTS = Path(__file__).resolve().parents[1]
WAIT_S = 240

SCRIPT = """
import os, sys, time, torch
from pathlib import Path
sys.path.insert(0, {tests!r})
from train.conftest import SyntheticData
from reslab.processes import exit_code_of
from reslab.train import fit, load_config

torch.set_num_threads(1)
rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
here, name, hold_at = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
resume = here / "runs" / name if len(sys.argv) > 4 else None
cfg = load_config(None, ['run.dir="{{}}"'.format(here / "runs"), "run.name=" + name, "run.progress=false",
                         "run.tensorboard=false", "model.name=resnet20", "model.dropout=0.3", "train.batch_size=8",
                         "train.epochs=3", "data.image_size=16", "optim.lr=0.05", "train.dist_timeout=60"])

def on_step(step, loss):
    if step == hold_at and rank == 0:  # held inside the step; the test signals the group now
        (here / "held").write_text(str(os.getpid()))
        while not (here / "go").exists():
            time.sleep(0.01)

try:
    history = fit(cfg, data=SyntheticData(batch_size=8, rank=rank, world_size=world), on_step=on_step, resume=resume)
except KeyboardInterrupt as stop:
    sys.exit(exit_code_of(stop))
torch.save(history.model.state_dict(), here / "rank{{}}.pt".format(rank))
"""


def _torchrun(here: Path, name: str, hold_at: int = 0, resume: bool = False, send: int | None = None):
    """(torchrun's exit status, its output, processes of its group left after it ended)."""
    for marker in ("held", "go"):
        (here / marker).unlink(missing_ok=True)
    args = [str(here), name, str(hold_at)] + (["resume"] if resume else [])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(here / f"{name}-{hold_at}.txt", "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                                 str(here / "train.py"), *args], cwd=here, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    try:
        if send is not None:
            deadline = time.monotonic() + WAIT_S
            while not (here / "held").exists():
                assert proc.poll() is None and time.monotonic() < deadline, (here / f"{name}-{hold_at}.txt").read_text()[-3000:]
                time.sleep(0.02)
            time.sleep(0.2)  # rank 1 reaches the stop agreement and waits there for rank 0
            os.killpg(proc.pid, send)
            time.sleep(0.1)  # the copy that torchrun's agent forwards, late as on a loaded machine
            os.killpg(proc.pid, send)
            (here / "go").touch()
        proc.wait(timeout=WAIT_S)
        return proc.returncode, (here / f"{name}-{hold_at}.txt").read_text(), processes_in_group(proc.pid, wait=10)
    finally:
        kill_group(proc.pid)


def test_sigterm_to_a_torchrun_group_checkpoints_the_agreed_step_and_resumes_exactly(tmp_path):
    (tmp_path / "train.py").write_text(textwrap.dedent(SCRIPT.format(tests=str(TESTS))))
    code, output, left = _torchrun(tmp_path, "full")
    assert code == 0 and left == [], output[-3000:]
    full = torch.load(tmp_path / "rank0.pt", weights_only=True)

    code, output, left = _torchrun(tmp_path, "parts", hold_at=6, send=signal.SIGTERM)
    assert left == [], output[-3000:]
    # torchrun's own exit status and message on SIGTERM are torch's; the ranks' are reslab's
    assert "[rank0]: Traceback" not in output and "[rank1]: Traceback" not in output, output[-3000:]
    assert "stopped during step" not in output  # not cut short by the forwarded copy of the signal
    meta = json.loads((tmp_path / "runs" / "parts" / "meta.json").read_text())
    assert meta["status"] == "interrupted" and meta["signal"] == "SIGTERM", meta
    assert meta["step"] == meta["checkpoint_step"] == 6
    assert load_checkpoint(tmp_path / "runs" / "parts")["state"]["step"] == 6

    code, output, left = _torchrun(tmp_path, "parts", resume=True)
    assert code == 0 and left == [], output[-3000:]
    resumed = torch.load(tmp_path / "rank0.pt", weights_only=True)
    assert [k for k in full if not torch.equal(full[k], resumed[k])] == []
