"""Exponential moving average of the weights (Polyak averaging), evaluated beside the raw weights."""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEma:
    """ema = decay * ema + (1 - decay) * weights for floating parameters and buffers; other buffers copied."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_state = self.module.state_dict()
        for name, value in model.state_dict().items():
            target = ema_state[name]
            if value.dtype.is_floating_point:
                target.lerp_(value.detach(), 1.0 - self.decay)
            else:
                target.copy_(value)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)


class Lookahead:
    """airbench's lookahead: every `every` steps the weights move to an EMA of themselves.

        ema = rho * ema + (1 - rho) * weights;  weights = ema
        rho = (decay ** every) * (step / total_steps) ** power

    so it averages little early (rho near 0: fast progress) and strongly at the end. Floating
    buffers (BatchNorm statistics) are averaged too; integer ones are left alone. The average starts
    at `start_step` (a copy of the weights then); `sync` puts the average into the model (airbench
    does it at every epoch end). Steps are counted from 1; `start_step` is the number of steps before
    the averaging may begin (airbench94: 3 epochs).
    """

    def __init__(self, every: int, decay: float, power: float, total_steps: int, start_step: int = 0):
        self.every, self.decay, self.power = every, decay, power
        self.total_steps, self.start_step = max(1, total_steps), start_step
        self.average: dict[str, torch.Tensor] | None = None

    @torch.no_grad()
    def step(self, model: nn.Module, step: int) -> None:
        """Call after optimizer step number `step` (1-based)."""
        if step <= self.start_step or step % self.every:  # step `start_step` + 1 is the first of the start epoch
            return
        state = _float_state(model)
        if self.average is None:
            self.average = {k: v.detach().clone() for k, v in state.items()}
            return
        rho = self.decay**self.every * (step / self.total_steps) ** self.power
        for name, value in state.items():
            self.average[name].lerp_(value, 1.0 - rho)
            value.copy_(self.average[name])

    @torch.no_grad()
    def sync(self, model: nn.Module) -> None:
        if self.average is not None:
            for name, value in _float_state(model).items():
                value.copy_(self.average[name])

    def state_dict(self) -> dict:
        return {"average": self.average}

    def load_state_dict(self, state: dict) -> None:
        self.average = state.get("average")


def _float_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict(keep_vars=True).items() if v.dtype.is_floating_point}
