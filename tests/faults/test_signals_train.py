"""Signals x phases for `reslab train`: a real run, stopped five times at different points by
different signals, resumed each time, ends bit-identical to an uninterrupted run; after every stop
the exit status, meta.json and the checkpoint say what happened, and no process is left behind.

The guarantees checked (docs/training.md states them):
- SIGINT or SIGTERM, to the process or its group, while waiting for data or evaluating: the run
  stops at once and checkpoints the last full step; exit status 130 (SIGINT) or 143 (SIGTERM).
- the same signal during an optimizer step or a checkpoint write: the step or the write finishes
  first, then the run checkpoints and stops.
- SIGKILL: the checkpoint on disk (end of the last epoch, or train.save_every) is intact; a
  checkpoint being written is never left half-written in its place.
- DataLoader workers never die of a signal meant for the group, and never outlive the run.
"""

from __future__ import annotations

import json

import pytest
import torch

from reslab.train.checkpoint import load_checkpoint

from .cli_runs import run

pytestmark = [pytest.mark.slow, pytest.mark.skipif(__import__("sys").platform != "linux", reason="Linux process groups")]

# resnet20 with classifier dropout and an EMA, on 16 photos decoded by one DataLoader worker:
# batch 4, 4 steps per epoch, 3 epochs (12 steps), evaluated on 16 photos after each epoch
SETTINGS = ["model.name=resnet20", "model.dropout=0.3", "train.ema_decay=0.9", "train.batch_size=4", "train.epochs=3",
            "train.steps=0", "data.image_size=16", "data.in_memory=no", "data.workers=1", "data.eval_split=val",
            "optim.lr=0.05", "schedule.name=cosine", "run.progress=false", "run.tensorboard=false"]


def _train_args(photos, runs, name):
    sets = [a for s in SETTINGS for a in ("--set", s)]
    return ["train", "cifar_quick", "--data", str(photos), "--name", name, "--set", f'run.dir="{runs}"', *sets]


def _meta(run_dir):
    return json.loads((run_dir / "meta.json").read_text())


def _step_on_disk(run_dir) -> int:
    return load_checkpoint(run_dir)["state"]["step"]


def test_five_stops_and_resumes_end_where_an_uninterrupted_run_does(photo_folder, tmp_path):
    runs = tmp_path / "runs"
    full = run(_train_args(photo_folder, runs, "full"), tmp_path / "p0")
    assert full.returncode == 0, full.output[-3000:]

    run_dir = runs / "parts"
    first = _train_args(photo_folder, runs, "parts")
    resume = ["train", "--resume", str(run_dir)]

    # 1. SIGTERM to the group while the main process waits for a batch (the reported defect: the
    #    worker died of it, the main process crashed with exit 1 and meta.json still said running)
    out = run(first, tmp_path / "p1", pause=("data", 10), send="SIGTERM-group")
    assert out.returncode == 143, out.output[-3000:]
    assert "Traceback" not in out.output and "killed by signal" not in out.output
    meta, stopped_at = _meta(run_dir), _step_on_disk(run_dir)
    assert meta["status"] == "interrupted" and meta["signal"] == "SIGTERM"
    assert meta["step"] == meta["checkpoint_step"] == stopped_at >= 1
    assert out.left_behind == []

    # 2. Ctrl-C to the process during the second optimizer step of this session: the step finishes
    out = run(resume, tmp_path / "p2", pause=("step", 2), send="SIGINT")
    assert out.returncode == 130 and out.left_behind == [], out.output[-3000:]
    assert _step_on_disk(run_dir) == stopped_at + 2 and _meta(run_dir)["signal"] == "SIGINT"

    # 3. Ctrl-C to the group (a terminal) during the evaluation after epoch 2: stops at once;
    #    the checkpoint is the end of the epoch's last step, evaluated again on resume
    #    (each epoch evaluates the model, then its EMA: epoch 2's model is the 3rd call if epoch 1's comes first)
    epoch_one_evaluated = len(load_checkpoint(run_dir)["state"]["rows"]) == 1
    out = run(resume, tmp_path / "p3", pause=("eval", 1 if epoch_one_evaluated else 3), send="SIGINT-group")
    assert out.returncode == 130 and out.left_behind == [], out.output[-3000:]
    state = load_checkpoint(run_dir)["state"]
    assert state["step"] == 8 and state["batch"] == 4 and len(state["rows"]) == 1

    # 4. SIGTERM during the end-of-epoch checkpoint write: the write completes, then the stop
    out = run(resume, tmp_path / "p4", pause=("checkpoint", 1), send="SIGTERM")
    assert out.returncode == 143 and out.left_behind == [], out.output[-3000:]
    state = load_checkpoint(run_dir)["state"]
    assert state["step"] == 8 and state["epoch"] == 2 and len(state["rows"]) == 2

    # 5. kill -9 during the next checkpoint write (after epoch 3): the previous checkpoint stays
    #    whole in place (the half-written one is a temporary file), the worker dies with the run
    out = run(resume, tmp_path / "p5", pause=("checkpoint", 1), send="SIGKILL")
    assert out.returncode == -9 and out.left_behind == [], out.output[-3000:]
    assert _step_on_disk(run_dir) == 8
    meta = _meta(run_dir)
    assert meta["status"] == "running" and meta["pid"] > 0  # what a kill -9 leaves: a dead pid
    assert list((run_dir / "checkpoints").glob(".last.pt.*.tmp")), "the pause was not inside the write"

    # 6. resume to the end
    out = run(resume, tmp_path / "p6")
    assert out.returncode == 0, out.output[-3000:]
    assert _meta(run_dir)["status"] == "finished"
    assert not list((run_dir / "checkpoints").glob(".*.tmp")), "a stale temporary checkpoint was left"

    a, b = load_checkpoint(runs / "full")["model"], load_checkpoint(run_dir)["model"]
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    ema_a, ema_b = load_checkpoint(runs / "full")["ema"], load_checkpoint(run_dir)["ema"]
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)
    rows_a, rows_b = load_checkpoint(runs / "full")["state"]["rows"], load_checkpoint(run_dir)["state"]["rows"]
    keys = ("epoch", "step", "train_loss", "val_loss", "val_top1", "ema_val_top1")
    assert [{k: r[k] for k in keys} for r in rows_a] == [{k: r[k] for k in keys} for r in rows_b]
