"""Each learning-rate rule against its formula."""

from __future__ import annotations

import math

import pytest

from reslab.train.config import ScheduleConfig
from reslab.train.schedule import LRSchedule, scaled_lr


def make(steps_per_epoch=10, total=100, base=0.1, **kw):
    return LRSchedule(ScheduleConfig(**kw), base, total, steps_per_epoch)


def test_multistep_in_iterations_is_the_cifar_rule():
    s = make(name="multistep", unit="step", milestones=(32000, 48000), total=64000)
    assert s.lr_at(0) == 0.1 and s.lr_at(31999) == 0.1
    assert s.lr_at(32000) == pytest.approx(0.01) and s.lr_at(47999) == pytest.approx(0.01)
    assert s.lr_at(48000) == pytest.approx(0.001) and s.lr_at(63999) == pytest.approx(0.001)


def test_multistep_in_epochs_converts_with_steps_per_epoch():
    s = make(name="multistep", unit="epoch", milestones=(3, 6), steps_per_epoch=10)
    assert [s.lr_at(k) for k in (29, 30, 59, 60)] == pytest.approx([0.1, 0.01, 0.01, 0.001])


def test_cosine_with_warmup_follows_the_formula():
    s = make(name="cosine", unit="step", warmup=10, warmup_start=0.1, total=110, min_lr=0.001)
    for k in (0, 5, 9):  # warm-up multiplies the (not yet decaying) cosine value
        assert s.lr_at(k) == pytest.approx(0.1 * (0.1 + 0.9 * k / 10))
    for k in (10, 35, 60, 109, 110):
        t = (k - 10) / 100
        assert s.lr_at(k) == pytest.approx(0.001 + (0.1 - 0.001) * 0.5 * (1 + math.cos(math.pi * t)))
    assert s.lr_at(60) == pytest.approx((0.1 + 0.001) / 2)


def test_warmup_in_epochs_before_multistep():
    s = make(name="multistep", unit="epoch", warmup=2, warmup_start=0.0, milestones=(5,), steps_per_epoch=10)
    assert s.lr_at(0) == 0.0 and s.lr_at(10) == pytest.approx(0.05) and s.lr_at(20) == pytest.approx(0.1)
    assert s.lr_at(50) == pytest.approx(0.01)


def test_plateau_divides_by_ten_after_patience_evaluations_without_improvement():
    s = make(name="plateau", plateau_patience=2, plateau_threshold=0.5, max_reductions=2)
    errors = [50.0, 40.0, 39.8, 39.9, 30.0, 30.0, 30.0, 29.0, 28.9, 28.8, 28.7]
    decays = [s.on_eval(e) for e in errors]
    # 39.8 improves by < 0.5 (bad 1), 39.9 (bad 2: decay), 30 improves, 30 (bad 1), 30 (bad 2: decay),
    # then 29.0 improves and nothing more decays: max_reductions = 2
    assert decays == [False, False, False, True, False, False, True, False, False, False, False]
    assert s.lr_at(0) == pytest.approx(0.001)
    restored = make(name="plateau", plateau_patience=2, plateau_threshold=0.5, max_reductions=2)
    restored.load_state_dict(s.state_dict())
    assert restored.lr_at(0) == s.lr_at(0) and restored.bad_evals == s.bad_evals


def test_resnet110_rule_small_lr_until_training_error_below_80():
    s = make(name="multistep", unit="step", milestones=(32000, 48000), total=64000,
             warmup_until_error=80.0, warmup_until_factor=0.1)
    assert s.lr_at(0) == pytest.approx(0.01)
    assert s.on_train_error(85.0) is False and s.lr_at(400) == pytest.approx(0.01)
    assert s.on_train_error(79.0) is True and s.lr_at(401) == pytest.approx(0.1)
    assert s.on_train_error(90.0) is False and s.lr_at(402) == pytest.approx(0.1)  # never goes back


def test_linear_scaling_rule():
    assert scaled_lr(0.1, True, 256) == pytest.approx(0.1)
    assert scaled_lr(0.1, True, 8 * 32 * 4) == pytest.approx(0.4)  # 8 processes x 32 x accumulation 4
    assert scaled_lr(0.1, False, 1024) == 0.1


def test_engine_applies_the_schedule_per_step(tiny_config):
    """The lr the optimizer used at each epoch end equals the formula at that step."""
    from reslab.train import fit

    from .conftest import SyntheticData

    h = fit(tiny_config("schedule.name=multistep", "schedule.milestones=[1]", "train.epochs=2",
                        "optim.lr=0.2", "optim.lr_per_256=true"), data=SyntheticData())
    base = 0.2 * 16 / 256
    # rows' lr: the lr of the epoch's last step (steps 3 and 7: after the milestone at step 4 in epoch 2)
    assert [r["lr"] for r in h.rows] == pytest.approx([base, base * 0.1])


def test_linear_with_warmup_is_airbenchs_triangle():
    # airbench94: 0.2 x lr at step 0, lr at 23% of training, 0.07 x lr at the end
    total = 476
    s = make(name="linear", unit="step", warmup=int(0.23 * total), warmup_start=0.2, total=total, min_lr=0.07)
    peak = int(0.23 * total)
    assert s.lr_at(0) == pytest.approx(0.1 * 0.2)
    assert s.lr_at(peak // 2) == pytest.approx(0.1 * (0.2 + 0.8 * (peak // 2) / peak))
    assert s.lr_at(peak) == pytest.approx(0.1)
    assert s.lr_at(total) == pytest.approx(0.07)
    mid = (peak + total) // 2
    assert s.lr_at(mid) == pytest.approx(0.1 + (0.07 - 0.1) * (mid - peak) / (total - peak))
