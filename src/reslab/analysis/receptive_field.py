"""Receptive fields: how much of the input pixel grid one output position can see.

For a chain of convolutions and pools the standard recursion (Araujo et al., Distill 2019) is

    r_out = r_in + (k_eff - 1) * j_in        (k_eff = d * (k - 1) + 1 for dilation d)
    j_out = j_in * s
    start_out = start_in + ((k_eff - 1) / 2 - p) * j_in

where r is the field's size in input pixels, j ("jump") the distance in input pixels between two
adjacent output positions, and start the input coordinate of the centre of output (0, 0)'s field
(input pixel centres sit at 0, 1, 2, ...). Where branches meet (a residual addition, an inception
concatenation) the output sees the union of what its inputs see: we keep the largest field.
Each axis (height, width) is tracked separately so 1x7 kernels are handled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ReceptiveField:
    size: tuple[int, int]  # (height, width) in input pixels
    jump: tuple[float, float]  # input pixels between adjacent output positions (the cumulative stride)
    start: tuple[float, float]  # input coordinate of the centre of output (0, 0)'s field

    @classmethod
    def input(cls) -> "ReceptiveField":
        return cls(size=(1, 1), jump=(1.0, 1.0), start=(0.0, 0.0))

    def through(self, kernel, stride, padding=0, dilation=1) -> "ReceptiveField":
        """The field after a sliding-window op (conv or pool) with these per-axis settings."""
        k, s, p, d = (_pair(v) for v in (kernel, stride, padding, dilation))
        size, jump, start = [], [], []
        for a in range(2):
            k_eff = d[a] * (k[a] - 1) + 1
            size.append(int(self.size[a] + (k_eff - 1) * self.jump[a]))
            start.append(self.start[a] + ((k_eff - 1) / 2 - p[a]) * self.jump[a])
            jump.append(self.jump[a] * s[a])
        return ReceptiveField(tuple(size), tuple(jump), tuple(start))

    def through_transposed(self, kernel, stride, padding=0, dilation=1) -> "ReceptiveField":
        """A transposed conv upsamples: the jump shrinks by the stride and the kernel spans output steps."""
        k, s, p, d = (_pair(v) for v in (kernel, stride, padding, dilation))
        size, jump, start = [], [], []
        for a in range(2):
            j_out = self.jump[a] / s[a]
            k_eff = d[a] * (k[a] - 1) + 1
            size.append(int(math.ceil(self.size[a] + (k_eff - 1) * j_out)))
            start.append(self.start[a] + (p[a] - (k_eff - 1) / 2) * j_out)
            jump.append(j_out)
        return ReceptiveField(tuple(size), tuple(jump), tuple(start))

    def sliced(self, axis: int, begin: int, step: int) -> "ReceptiveField":
        """Keep every `step`-th position from `begin` along `axis` (0: height, 1: width); a negative
        begin is padding added in front."""
        jump, start = list(self.jump), list(self.start)
        start[axis] += begin * jump[axis]
        jump[axis] *= step
        return ReceptiveField(self.size, tuple(jump), tuple(start))

    def as_dict(self) -> dict:
        return {"size": list(self.size), "jump": list(self.jump), "start": list(self.start)}

    def __str__(self) -> str:
        h, w = self.size
        jh, jw = (int(j) if float(j).is_integer() else round(j, 3) for j in self.jump)
        size = f"{h}" if h == w else f"{h}x{w}"
        jump = f"{jh}" if jh == jw else f"{jh}x{jw}"
        return f"{size} /{jump}"


def widest(fields: list[ReceptiveField]) -> ReceptiveField | None:
    """Where branches merge the output sees the union of its inputs' fields: keep the largest."""
    fields = [f for f in fields if f is not None]
    if not fields:
        return None
    return max(fields, key=lambda f: (f.size[0] * f.size[1], f.jump))


def adaptive_window(in_size: int, out_size: int) -> tuple[int, int]:
    """(kernel, stride) of an adaptive pool; exact when out divides in, else the widest window."""
    stride = max(in_size // out_size, 1)
    kernel = math.ceil(in_size / out_size) + (0 if in_size % out_size == 0 else 1)
    return min(kernel, in_size), stride


def chain(layers: list[tuple[int, int, int]]) -> ReceptiveField:
    """Hand recursion for a plain chain of (kernel, stride, padding) layers; a reference for checks."""
    rf = ReceptiveField.input()
    for k, s, p in layers:
        rf = rf.through(k, s, p)
    return rf


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (list, tuple)):
        if len(v) == 0:
            raise ValueError("empty window argument")
        return (int(v[0]), int(v[-1])) if len(v) <= 2 else (int(v[-2]), int(v[-1]))
    return (int(v), int(v))
