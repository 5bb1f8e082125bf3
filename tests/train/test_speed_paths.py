"""The engine's speed paths (bf16, channels_last, fused optimizer, torch.compile, lookahead, frozen
parameters, data-dependent initialisation): each stays within a stated tolerance of the plain
path on a tiny model, and a run with all of them on resumes bit-exactly."""

from __future__ import annotations

import pytest
import torch

from reslab.train import fit
from reslab.train import compile_policy
from reslab.train.checkpoint import load_checkpoint

from .conftest import SyntheticData
from .test_engine import InterruptAt

# a 3-stage airbench net with 8/16/16 channels on 16x16 inputs: every speed path applies to it
TINY_AIRBENCH = ("model.name=airbench94", "model.options={widths = [8, 16, 16]}")
EVERY_PATH = (*TINY_AIRBENCH, "train.amp=bf16", "train.channels_last=true", "optim.kernel=fused", "optim.nesterov=true",
              "optim.norm_lr_scale=4", "train.lookahead_every=2", "train.lookahead_start=0.5",
              'train.freeze_after={"whiten.bias" = 1}', "schedule.name=linear", "schedule.warmup=0.5",
              "train.label_smoothing=0.2", "train.compile=off")


def _weights(run_dir):
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")


def _losses(history):
    return [r["train_loss"] for r in history.rows]


# cifar_fast's path: the residual fast_resnet, Muon for the filters beside Nesterov SGD, lr linear to 0
CIFAR_FAST_PATH = ("model.name=fast_resnet", "model.options={widths = [8, 16, 16], depths = [2, 2, 3]}",
                   "train.amp=bf16", "train.channels_last=true", "optim.nesterov=true", "optim.momentum=0.85",
                   "optim.muon_lr=0.2", "optim.muon_momentum=0.6", "optim.norm_lr_scale=4", "schedule.name=linear",
                   "schedule.min_lr=0", 'train.freeze_after={"whiten.bias" = 1}', "train.label_smoothing=0.2",
                   "train.compile=off")


@pytest.mark.parametrize("path", [EVERY_PATH, CIFAR_FAST_PATH], ids=["every-path", "cifar-fast-muon"])
def test_every_speed_path_resumes_bit_exact(tiny_config, tmp_path, path):
    full = fit(tiny_config(*path, f'run.dir="{tmp_path / "full"}"'), data=SyntheticData())
    cfg = tiny_config(*path, f'run.dir="{tmp_path / "parts"}"')
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, data=InterruptAt(epoch=1, batch=2))  # mid-epoch 2, after lookahead began (or with Muon's buffers in flight)
    run_dir = next((tmp_path / "parts").iterdir())
    resumed = fit(cfg, data=SyntheticData(), resume=run_dir)
    a, b = _weights(full.run_dir), _weights(resumed.run_dir)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    if path is EVERY_PATH:
        la, lb = a["lookahead"]["average"], b["lookahead"]["average"]
        assert la is not None and all(torch.equal(la[k], lb[k]) for k in la)
    assert _losses(full) == _losses(resumed)
    assert _losses(full)[-1] < _losses(full)[0]  # it trained


def test_data_init_and_freezing(tiny_config, tmp_path):
    data = SyntheticData()
    h = fit(tiny_config(*TINY_AIRBENCH, "train.epochs=3", 'train.freeze_after={"whiten.bias" = 1}', "train.compile=off",
                        f'run.dir="{tmp_path}"'), data=data)
    final = _weights(h.run_dir)["model"]
    # the whitening filters come from the training images and never train
    from reslab.models import create_model

    reference = create_model("airbench94", num_classes=4, widths=(8, 16, 16))
    reference.init_from_data(data.train.sample_images(5000))
    assert torch.allclose(final["whiten.weight"], reference.whiten.weight)
    # its bias trained in epoch 1 only: the same after epochs 1 and 3, different from the zeros it started at
    after_one = fit(tiny_config(*TINY_AIRBENCH, "train.epochs=1", "train.compile=off", f'run.dir="{tmp_path / "one"}"'),
                    data=SyntheticData())
    bias_after_one = _weights(after_one.run_dir)["model"]["whiten.bias"]
    assert bias_after_one.abs().sum() > 0 and torch.equal(final["whiten.bias"], bias_after_one)
    with pytest.raises(Exception, match="no parameter or module"):
        fit(tiny_config(*TINY_AIRBENCH, 'train.freeze_after={"whitening.bias" = 1}', "train.compile=off",
                        f'run.dir="{tmp_path / "bad"}"'), data=SyntheticData())


@pytest.mark.parametrize("path,tolerance", [
    (("optim.kernel=fused",), 1e-5),  # the same arithmetic in one kernel
    (("optim.kernel=foreach",), 1e-5),
    (("train.channels_last=true",), 1e-3),  # another convolution algorithm: reassociated sums
    (("train.amp=bf16", "train.channels_last=true"), 0.02),  # 8-bit mantissas: the curve, not the digits
])
def test_speed_paths_stay_close_to_the_plain_path(tiny_config, tmp_path, path, tolerance):
    plain = fit(tiny_config("optim.kernel=loop", "train.compile=off", "train.epochs=3", f'run.dir="{tmp_path / "a"}"'),
                data=SyntheticData())
    fast = fit(tiny_config("optim.kernel=loop", *path, "train.compile=off", "train.epochs=3", f'run.dir="{tmp_path / "b"}"'),
               data=SyntheticData())
    a, b = torch.tensor(_losses(plain)), torch.tensor(_losses(fast))
    # epoch losses fall from ~1.4 to ~0.05: differences are measured against the starting loss
    assert (a - b).abs().max() <= tolerance * a[0], (a, b)
    assert a[-1] < a[0] / 4  # it learned: the comparison is of a moving curve


def test_compile_auto_decides_from_the_projected_time(monkeypatch, tmp_path):
    monkeypatch.setenv("RESLAB_CACHE", str(tmp_path))
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda m: compiled.append(m) or m)
    model = torch.nn.Linear(2, 2)
    warm, timed = compile_policy.EAGER_WARMUP, compile_policy.EAGER_TIMED

    def policy(total_steps, step_s):
        p = compile_policy.CompilePolicy("auto", model, "key", total_steps)
        p.eager_times = [step_s] * (warm + timed)
        p.after_step(warm + timed)
        return p

    # 1 s steps: 10,000 steps save ~1,700 s at the 1.2x guess, more than 2 x 120 s of compiling
    assert policy(10_000, 1.0).state["compiled"] is True and compiled
    # 100 steps would save ~17 s: not worth 120 s
    assert policy(100, 1.0).state["compiled"] is False
    # a record of this setup replaces the guesses: compiling measured slower means never
    compile_policy.write_record("key", {"compile_s": 10.0, "speedup": 0.9})
    assert policy(10_000, 1.0).state["compiled"] is False
    compile_policy.write_record("key", {"compile_s": 1.0, "speedup": 2.0})
    assert policy(100, 1.0).state["compiled"] is True  # cheap and fast on this machine: worth it for 100 steps
    # the decision is kept: a resumed run gets it back through the state
    resumed = compile_policy.CompilePolicy("auto", model, "key", 10_000, {"compiled": False, "reason": "saved"})
    resumed.eager_times = [1.0] * (warm + timed)
    resumed.after_step(warm + timed)
    assert resumed.state["compiled"] is False


def test_failed_compile_falls_back_to_the_same_eager_run(tiny_config, tmp_path, monkeypatch):
    class Broken(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            self.inner(x)  # runs (BatchNorm statistics move) and then fails, as a backward compile can
            raise RuntimeError("no C++ compiler")

    eager = fit(tiny_config("train.compile=off", f'run.dir="{tmp_path / "a"}"', *("model.dropout=0.3",)), data=SyntheticData())
    monkeypatch.setattr(torch, "compile", Broken)
    fallback = fit(tiny_config("train.compile=on", f'run.dir="{tmp_path / "b"}"', *("model.dropout=0.3",)), data=SyntheticData())
    a, b = _weights(eager.run_dir)["model"], _weights(fallback.run_dir)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _weights(fallback.run_dir)["state"]["compile"]["reason"].startswith("compile failed")


@pytest.mark.slow
def test_compiled_training_matches_eager_and_resumes_bit_exact(tiny_config, tmp_path):
    settings = (*TINY_AIRBENCH, "train.epochs=2")
    eager = fit(tiny_config(*settings, "train.compile=off", f'run.dir="{tmp_path / "eager"}"'), data=SyntheticData())
    full = fit(tiny_config(*settings, "train.compile=on", f'run.dir="{tmp_path / "full"}"'), data=SyntheticData())
    torch.testing.assert_close(torch.tensor(_losses(full)), torch.tensor(_losses(eager)), rtol=1e-3, atol=0)
    cfg = tiny_config(*settings, "train.compile=on", f'run.dir="{tmp_path / "parts"}"')
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, data=InterruptAt(epoch=1, batch=2))
    resumed = fit(cfg, data=SyntheticData(), resume=next((tmp_path / "parts").iterdir()))
    a, b = _weights(full.run_dir)["model"], _weights(resumed.run_dir)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
