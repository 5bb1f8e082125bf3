"""SSL losses against hand-computed values, and NT-Xent's gathered negatives under 2 processes."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from reslab.ssl.losses import byol_loss, info_nce_queue, nt_xent


def _ce(pos: float, others: list[float], t: float) -> float:
    """-log softmax of the positive among the candidates, written out."""
    return -math.log(math.exp(pos / t) / sum(math.exp(s / t) for s in others))


def test_nt_xent_orthogonal_pairs_by_hand():
    # positives identical, negatives orthogonal: every anchor sees similarities 1 (positive), 0, 0
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert nt_xent(z, z.clone(), temperature=1.0).item() == pytest.approx(math.log(1 + 2 / math.e), abs=1e-6)
    assert nt_xent(z, z.clone(), temperature=0.5).item() == pytest.approx(math.log(1 + 2 * math.exp(-2)), abs=1e-6)


def test_nt_xent_known_similarities():
    # unit vectors a, b (view 1) and c, d (view 2); a.b=.6 a.c=.8 a.d=0 b.c=.96 b.d=.8 c.d=.6
    a, b, c, d = [1.0, 0.0], [0.6, 0.8], [0.8, 0.6], [0.0, 1.0]
    t = 0.5
    expected = (
        _ce(0.8, [0.6, 0.8, 0.0], t)  # anchor a: positive c; candidates b, c, d
        + _ce(0.8, [0.6, 0.96, 0.8], t)  # anchor b: positive d; candidates a, c, d
        + _ce(0.8, [0.8, 0.96, 0.6], t)  # anchor c: positive a; candidates a, b, d
        + _ce(0.8, [0.0, 0.8, 0.6], t)  # anchor d: positive b; candidates a, b, c
    ) / 4
    # scale does not matter: the loss normalises its inputs
    loss = nt_xent(torch.tensor([a, b]) * 3, torch.tensor([c, d]) * 0.5, temperature=t)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_nt_xent_prefers_aligned_views():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(8, 16, generator=g)
    aligned = nt_xent(z, z + 0.01 * torch.randn(8, 16, generator=g))
    shuffled = nt_xent(z, z[torch.randperm(8, generator=g)])
    assert aligned < shuffled


def test_info_nce_queue_by_hand():
    q = torch.tensor([[1.0, 0.0]])
    k = torch.tensor([[0.6, 0.8]])
    queue = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    t = 0.2
    assert info_nce_queue(q, k, queue, t).item() == pytest.approx(_ce(0.6, [0.6, 0.0, -1.0], t), abs=1e-6)


def test_info_nce_gives_no_gradient_to_keys():
    q = torch.randn(4, 8, requires_grad=True)
    k = torch.randn(4, 8, requires_grad=True)
    info_nce_queue(q, k, torch.nn.functional.normalize(torch.randn(16, 8), dim=1)).backward()
    assert q.grad is not None and k.grad is None


def test_byol_loss_by_hand():
    assert byol_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])).item() == pytest.approx(2.0)
    assert byol_loss(torch.tensor([[1.0, 1.0]]), torch.tensor([[2.0, 2.0]])).item() == pytest.approx(0.0, abs=1e-6)
    assert byol_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[-3.0, 0.0]])).item() == pytest.approx(4.0)


GATHER_SCRIPT = """
import os, torch, torch.distributed as dist
from reslab.ssl.losses import nt_xent
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
g = torch.Generator().manual_seed(0)
z1_all, z2_all = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
rows = slice(rank * 4, rank * 4 + 4)
z1 = z1_all[rows].clone().requires_grad_(True)
z2 = z2_all[rows].clone().requires_grad_(True)
loss = nt_xent(z1, z2, temperature=0.3)
loss.backward()
torch.save({{"loss": loss.detach(), "g1": z1.grad, "g2": z2.grad}}, os.path.join({out!r}, f"rank{{rank}}.pt"))
dist.destroy_process_group()
"""


def test_nt_xent_gathers_negatives_across_processes(tmp_path):
    """2 processes of 4 images each give the loss and gradients of one process with all 8."""
    script = tmp_path / "gather.py"
    script.write_text(textwrap.dedent(GATHER_SCRIPT.format(out=str(tmp_path))))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(8, 5, generator=g).requires_grad_(True)
    z2 = torch.randn(8, 5, generator=g).requires_grad_(True)
    full = nt_xent(z1, z2, temperature=0.3)
    full.backward()
    parts = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    # every anchor has the same 14 negatives either way: the mean over ranks is the global loss
    assert ((parts[0]["loss"] + parts[1]["loss"]) / 2).item() == pytest.approx(full.item(), abs=1e-5)
    # DDP averages gradients over ranks: the summed per-rank gradients / 2 are the global ones
    for r, part in enumerate(parts):
        rows = slice(r * 4, r * 4 + 4)
        assert torch.allclose(part["g1"] / 2, z1.grad[rows], atol=1e-5)
        assert torch.allclose(part["g2"] / 2, z2.grad[rows], atol=1e-5)
