"""A 2-process DDP run under torchrun (gloo on CPU): finishes within a timeout, rank 0 alone writes,
both ranks end with the same weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

TESTS = Path(__file__).resolve().parents[1]

SCRIPT = """
import os, sys, torch
sys.path.insert(0, {tests!r})
from train.conftest import SyntheticData
from reslab.train import fit, load_config
torch.set_num_threads(1)
rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
cfg = load_config(None, ['run.dir="{runs}"', "run.progress=false", "run.tensorboard=false", "model.name=resnet20",
                         "train.batch_size=8", "train.epochs=2", "data.image_size=16", "optim.lr=0.05",
                         "train.dist_timeout=60"])
history = fit(cfg, data=SyntheticData(batch_size=8, rank=rank, world_size=world))
torch.save({{"rows": history.rows, "weights": history.model.state_dict()}}, "{out}/rank{{}}.pt".format(rank))
"""


def test_two_process_gloo_run(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    out.mkdir()
    script = tmp_path / "ddp_train.py"
    script.write_text(textwrap.dedent(SCRIPT.format(tests=str(TESTS), runs=str(runs), out=str(out))))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dirs = list(runs.iterdir())
    assert len(run_dirs) == 1  # one run directory, written by rank 0
    rows = [json.loads(line) for line in (run_dirs[0] / "metrics.jsonl").read_text().splitlines()]
    # 64 images over 2 ranks of batch 8: 4 steps per epoch; written once, not once per rank
    assert [r["step"] for r in rows] == [4, 8]
    r0, r1 = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["weights"].keys() == r1["weights"].keys()
    for k in r0["weights"]:
        assert torch.equal(r0["weights"][k], r1["weights"][k]), k
    # metrics are all-reduced: both ranks logged the same global training loss and accuracy
    assert [r["train_loss"] for r in r0["rows"]] == [r["train_loss"] for r in r1["rows"]]
    assert [r["val_top1"] for r in r0["rows"]] == [r["val_top1"] for r in r1["rows"]]
    saved = torch.load(run_dirs[0] / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(saved[k], r0["weights"][k]) for k in saved)
