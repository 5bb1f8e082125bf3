"""The engine's guarantees: exact mid-epoch resume, non-finite loss stop, atomic checkpoints, resume checks."""

from __future__ import annotations

import pytest
import torch

from reslab.errors import ReslabError
from reslab.train import NonFiniteLossError, engine, fit
from reslab.train import checkpoint as ckpt_io
from reslab.train.checkpoint import load_checkpoint, save_checkpoint
from reslab.train.runs import load_run_model

from .conftest import SyntheticData


class InterruptAt(SyntheticData):
    """Raises KeyboardInterrupt (as Ctrl-C or a preemption would) when batch `batch` of `epoch` is requested."""

    def __init__(self, epoch, batch, **kw):
        super().__init__(**kw)
        inner = self.train.batches

        def batches(e, start_batch=0):
            for i, item in enumerate(inner(e, start_batch), start=start_batch):
                if (e, i) == (epoch, batch):
                    raise KeyboardInterrupt
                yield item

        self.train.batches = batches


# dropout and EMA make the RNG and EMA state matter; cosine + warm-up make the schedule position matter
RESUME_SETTINGS = ("model.dropout=0.3", "train.ema_decay=0.9", "schedule.name=cosine", "schedule.warmup=1")


def _final_weights(run_dir):
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]


def _interrupted_then_resumed(cfg):
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, data=InterruptAt(epoch=1, batch=2))  # after step 6 of 8: mid-epoch 2
    run_dir = next(p for p in (cfg.run.dir and __import__("pathlib").Path(cfg.run.dir)).iterdir())
    assert load_checkpoint(run_dir)["state"]["step"] == 6
    return fit(cfg, data=SyntheticData(), resume=run_dir)


def test_mid_epoch_resume_is_bit_exact(tiny_config, tmp_path):
    full = fit(tiny_config(*RESUME_SETTINGS, f'run.dir="{tmp_path / "full"}"'), data=SyntheticData())
    resumed = _interrupted_then_resumed(tiny_config(*RESUME_SETTINGS, f'run.dir="{tmp_path / "parts"}"'))
    a, b = _final_weights(full.run_dir), _final_weights(resumed.run_dir)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ema_a = load_checkpoint(full.run_dir)["ema"]
    ema_b = load_checkpoint(resumed.run_dir)["ema"]
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)
    assert [r["train_loss"] for r in full.rows] == [r["train_loss"] for r in resumed.rows]


def test_resume_without_rng_restore_or_step_seeds_differs(tiny_config, tmp_path, monkeypatch):
    # the guard of the test above: if the model's random draws did not matter, it would prove nothing
    full = fit(tiny_config(*RESUME_SETTINGS, f'run.dir="{tmp_path / "full"}"'), data=SyntheticData())
    monkeypatch.setattr(ckpt_io, "restore_rng_state", lambda state: None)
    monkeypatch.setattr(engine, "seed_step", lambda seed, step, rank: None)
    resumed = _interrupted_then_resumed(tiny_config(*RESUME_SETTINGS, f'run.dir="{tmp_path / "parts"}"'))
    a, b = _final_weights(full.run_dir), _final_weights(resumed.run_dir)
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())


class NanAt(SyntheticData):
    def __init__(self, epoch, batch, **kw):
        super().__init__(**kw)
        inner = self.train.batches

        def batches(e, start_batch=0):
            for i, (x, y) in enumerate(inner(e, start_batch), start=start_batch):
                if (e, i) == (epoch, batch):
                    x = x.clone()
                    x[0, 0, 0, 0] = float("nan")
                yield x, y

        self.train.batches = batches


def test_non_finite_loss_stops_before_the_step_and_keeps_last_checkpoint(tiny_config, tmp_path):
    cfg = tiny_config()
    with pytest.raises(NonFiniteLossError, match="step 7 ") as err:
        fit(cfg, data=NanAt(epoch=1, batch=2))
    assert isinstance(err.value, ReslabError)
    run_dir = next((tmp_path / "runs").iterdir())
    state = load_checkpoint(run_dir)
    assert state["state"]["step"] == 4  # the end of epoch 1, the last good state
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    model, config, classes, _ = load_run_model(run_dir / "checkpoints" / "last.pt")
    assert classes == ["c0", "c1", "c2", "c3"] and config["model"]["name"] == "resnet20"


def test_interrupted_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    good = {"model": {"w": torch.ones(3)}, "config": {}}
    save_checkpoint(path, good)

    def crash_midway(obj, f, *a, **kw):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(OSError):
        save_checkpoint(path, {"model": {"w": torch.zeros(3)}, "config": {}})
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_resume_refuses_another_architecture(tiny_config, tmp_path):
    first = fit(tiny_config("train.epochs=1"), data=SyntheticData())
    with pytest.raises(ReslabError, match=r"model\.name: 'resnet20' in the checkpoint, 'plain20' now"):
        fit(tiny_config("model.name=plain20"), data=SyntheticData(), resume=first.run_dir)
    with pytest.raises(ReslabError, match=r"train\.batch_size"):
        fit(tiny_config("train.batch_size=8"), data=SyntheticData(batch_size=8), resume=first.run_dir)


def test_run_directory_contents(tiny_config, tmp_path):
    import json

    h = fit(tiny_config("train.epochs=2"), data=SyntheticData())
    rows = [json.loads(line) for line in (h.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and [r["step"] for r in rows] == [4, 8]
    assert {"lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "images_per_s", "wall_time"} <= set(rows[0])
    assert (h.run_dir / "metrics.csv").read_text().splitlines()[0].startswith("epoch,step,lr,train_loss")
    model, config, classes, pre = load_run_model(h.run_dir)  # from model.safetensors
    ref = load_checkpoint(h.run_dir)["model"]
    assert all(torch.equal(model.state_dict()[k], ref[k]) for k in ref)
    assert config["model"]["num_classes"] == 4 and pre.crop == 16
    meta = json.loads((h.run_dir / "meta.json").read_text())
    assert meta["status"] == "finished" and meta["seed"] == 0


def test_sigterm_checkpoints_like_ctrl_c(tiny_config, tmp_path):
    """A preemption (SIGTERM) mid-epoch saves the last full step; resuming continues from it."""
    import os
    import signal

    def preempt(step, loss):
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    cfg = tiny_config(*RESUME_SETTINGS, f'run.dir="{tmp_path / "parts"}"')
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, data=SyntheticData(), on_step=preempt)
    assert signal.getsignal(signal.SIGTERM) is previous  # the handler is only in place during training
    run_dir = next((tmp_path / "parts").iterdir())
    assert load_checkpoint(run_dir)["state"]["step"] == 3
    resumed = fit(cfg, data=SyntheticData(), resume=run_dir)
    full = fit(tiny_config(*RESUME_SETTINGS, f'run.dir="{tmp_path / "full"}"'), data=SyntheticData())
    a, b = _final_weights(full.run_dir), _final_weights(resumed.run_dir)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_being_trained_cannot_be_resumed_by_a_second_process(tiny_config, tmp_path):
    from reslab.processes import FolderLock

    first = fit(tiny_config("train.epochs=1"), data=SyntheticData())
    with FolderLock(first.run_dir, "the run"):  # as another process holds it while it trains
        with pytest.raises(ReslabError, match="is in use by process"):
            fit(tiny_config("train.epochs=2"), data=SyntheticData(), resume=first.run_dir)
    assert fit(tiny_config("train.epochs=2"), data=SyntheticData(), resume=first.run_dir).rows[-1]["epoch"] == 2
