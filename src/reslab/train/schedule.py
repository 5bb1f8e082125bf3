"""Learning-rate schedules as pure functions of the step, plus the little state two rules need.

`LRSchedule.lr_at(step)` gives the learning rate of optimizer step `step` (0-based). Warm-up
multiplies whatever schedule follows. Two rules react to measurements instead of the clock:
reduce-on-plateau (the paper's ImageNet rule: /10 when validation error stops falling) and the
ResNet-110 rule (a small lr until training error falls below a threshold); their state is a few
numbers saved in every checkpoint, so a resumed run takes the same decisions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import ScheduleConfig


@dataclass
class LRSchedule:
    cfg: ScheduleConfig
    base_lr: float
    total_steps: int
    steps_per_epoch: int
    # state (saved in checkpoints)
    reductions: int = 0  # plateau: decays applied so far
    best_error: float = math.inf  # plateau: best validation error seen (%)
    bad_evals: int = 0  # plateau: evaluations since the last improvement
    error_warmup_done: bool = False  # ResNet-110 rule: training error has fallen below the threshold

    def __post_init__(self):  # name and unit were checked when the config was built
        self.warmup_steps = self._to_steps(self.cfg.warmup)
        self.milestones = sorted(self._to_steps(m) for m in self.cfg.milestones)

    def _to_steps(self, amount: float) -> int:
        return int(round(amount * self.steps_per_epoch)) if self.cfg.unit == "epoch" else int(amount)

    def lr_at(self, step: int) -> float:
        cfg = self.cfg
        if cfg.name == "multistep":
            lr = self.base_lr * cfg.gamma ** sum(step >= m for m in self.milestones)
        elif cfg.name == "plateau":
            lr = max(self.base_lr * cfg.gamma**self.reductions, min(cfg.min_lr, self.base_lr))
        elif cfg.name == "cosine":
            span = max(1, self.total_steps - self.warmup_steps)
            t = min(1.0, max(0.0, (step - self.warmup_steps) / span))
            lr = cfg.min_lr + (self.base_lr - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))
        elif cfg.name == "linear":  # with warm-up: airbench's triangle (up from lr * warmup_start, down to min_lr)
            span = max(1, self.total_steps - self.warmup_steps)
            t = min(1.0, max(0.0, (step - self.warmup_steps) / span))
            lr = self.base_lr + (cfg.min_lr - self.base_lr) * t
        else:
            lr = self.base_lr
        if step < self.warmup_steps:
            lr *= cfg.warmup_start + (1.0 - cfg.warmup_start) * step / self.warmup_steps
        if cfg.warmup_until_error > 0 and not self.error_warmup_done:
            lr *= cfg.warmup_until_factor
        return lr

    def on_train_error(self, error: float) -> bool:
        """ResNet-110 rule: called with the running training error (%); True when it switches now."""
        if self.cfg.warmup_until_error > 0 and not self.error_warmup_done and error < self.cfg.warmup_until_error:
            self.error_warmup_done = True
            return True
        return False

    def on_eval(self, val_error: float) -> bool:
        """Plateau rule: called with the validation error (%) after each evaluation; True when it decays."""
        if self.cfg.name != "plateau":
            return False
        if val_error < self.best_error - self.cfg.plateau_threshold:
            self.best_error, self.bad_evals = val_error, 0
            return False
        self.bad_evals += 1
        if self.bad_evals >= self.cfg.plateau_patience and self.reductions < self.cfg.max_reductions:
            self.reductions += 1
            self.bad_evals = 0
            self.best_error = min(self.best_error, val_error)
            return True
        return False

    def state_dict(self) -> dict:
        return {
            "reductions": self.reductions,
            "best_error": self.best_error,
            "bad_evals": self.bad_evals,
            "error_warmup_done": self.error_warmup_done,
        }

    def load_state_dict(self, state: dict) -> None:
        self.reductions = int(state["reductions"])
        self.best_error = float(state["best_error"])
        self.bad_evals = int(state["bad_evals"])
        self.error_warmup_done = bool(state["error_warmup_done"])


def scaled_lr(lr: float, per_256: bool, global_batch: int) -> float:
    """The linear scaling rule (Goyal et al.): an lr given per 256 images, scaled to the global batch."""
    return lr * global_batch / 256 if per_256 else lr
