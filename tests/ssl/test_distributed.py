"""MoCo v2 under torchrun, 2 processes (gloo): the queue takes the keys of both, and both ranks end identical."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from .test_train import colour_images

TESTS = Path(__file__).resolve().parents[1]

SCRIPT = """
import os, sys, torch
from reslab.train import fit, load_config
torch.set_num_threads(1)
rank = int(os.environ["RANK"])
cfg = load_config("ssl_moco", ['data.path="{photos}"', 'run.dir="{runs}"', "run.progress=false", "run.tensorboard=false",
                               "data.image_size=8", "data.workers=0", "data.cache_decoded=false", "train.batch_size=4",
                               "train.epochs=2", "train.amp=off", "train.channels_last=false",
                               "ssl.proj_hidden=16", "ssl.proj_dim=8", "ssl.queue_size=40", "ssl.key_splits=2",
                               "train.dist_timeout=60"])
history = fit(cfg)
torch.save(history.model.state_dict(), "{out}/rank{{}}.pt".format(rank))
"""


@pytest.mark.slow
def test_moco_two_processes(tmp_path):
    photos = colour_images(tmp_path / "photos", 8, flat=True)  # 24 images: 3 steps of 4 per rank per epoch
    runs, out = tmp_path / "runs", tmp_path / "out"
    out.mkdir()
    script = tmp_path / "ddp_moco.py"
    script.write_text(textwrap.dedent(SCRIPT.format(photos=photos, runs=runs, out=out)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list(runs.iterdir())) == 1  # rank 0 alone writes the run folder
    a, b = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for k in a:  # student, teacher, queue: the same on both ranks
        assert torch.equal(a[k], b[k]), k
    # 6 steps, each enqueuing 2 views x 4 images x 2 ranks = 16 keys: 96 keys through a ring of 40
    assert a["queue_ptr"].item() == 96 % 40
