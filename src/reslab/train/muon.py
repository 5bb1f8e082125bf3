"""Muon for convolution filters, SGD for everything else, in one optimizer (Jordan et al. 2024).

Muon ("MomentUm Orthogonalized by Newton-schulz") replaces each filter bank's momentum-SGD update
by its nearest semi-orthogonal matrix, computed with a few Newton-Schulz iterations: every
direction of the update moves by about the same amount. airbench94_muon reaches airbench94's 94%
in 8 epochs instead of 9.9. As there, each filter bank is rescaled to Frobenius norm
sqrt(out_channels) before its update (the update's size then sets the effective step), and
filters get no weight decay.

Groups with `muon=True` take the Muon update (their `momentum` is the Muon momentum); the others
the SGD update of torch.optim.SGD (momentum, Nesterov, L2 weight decay).
"""

from __future__ import annotations

import torch

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # the quintic's coefficients, as in airbench94_muon.py


def orthogonalise(g: torch.Tensor, steps: int = 3, eps: float = 1e-7) -> torch.Tensor:
    """Newton-Schulz iterations towards U V^T for G = U S V^T (2-D), in bf16: singular values end in
    about [0.5, 1.5] rather than exactly 1, which trains as well (Jordan et al.)."""
    a, b, c = NS_COEFFICIENTS
    x = g.bfloat16()
    x = x / (x.norm() + eps)  # the largest singular value is at most 1
    tall = g.size(0) > g.size(1)
    if tall:
        x = x.T
    for _ in range(steps):
        m = x @ x.T
        x = a * x + (b * m + c * m @ m) @ x
    return (x.T if tall else x).to(g.dtype)


class MuonSGD(torch.optim.Optimizer):
    def __init__(self, params, lr: float, momentum: float = 0.9, nesterov: bool = True, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay, muon=False))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if group["muon"]:
                self._muon(group, params)
            else:
                self._sgd(group, params)
        return loss

    def _buffers(self, params, grads):
        bufs = []
        for p, g in zip(params, grads):
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = g.detach().clone()
                bufs.append(None)  # first step: the buffer is the gradient (torch.optim.SGD's rule)
            else:
                bufs.append(state["momentum_buffer"])
        return bufs

    def _sgd(self, group, params):
        grads = [p.grad for p in params]
        if group["weight_decay"]:
            grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
        m = group["momentum"]
        bufs = self._buffers(params, grads)
        updates = []
        for p, g, buf in zip(params, grads, bufs):
            if buf is None:
                buf = self.state[p]["momentum_buffer"]
            else:
                buf.mul_(m).add_(g)
            updates.append(g.add(buf, alpha=m) if group["nesterov"] else buf)
        torch._foreach_add_(params, updates, alpha=-group["lr"])

    def _muon(self, group, params):
        m = group["momentum"]
        grads = [p.grad for p in params]
        bufs = self._buffers(params, grads)
        for p, g, buf in zip(params, grads, bufs):
            if buf is None:
                buf = self.state[p]["momentum_buffer"]
            else:
                buf.mul_(m).add_(g)
            g = g.add(buf, alpha=m) if group["nesterov"] else buf
            p.mul_(len(p) ** 0.5 / p.norm().clamp_min(1e-12))  # the filter bank back to norm sqrt(out_channels)
            update = orthogonalise(g.reshape(len(g), -1)).view_as(p)
            p.add_(update, alpha=-group["lr"])
