import numpy as np
import pytest
import torch

from reslab.data.mix import cutmix_box, mix_batch


def _lam_drawn(alpha, seed):
    # mix_batch draws its Beta sample from a NumPy generator seeded by the torch generator
    g = torch.Generator().manual_seed(seed)
    s = int(torch.randint(0, 2**62, (1,), generator=g))
    return float(np.random.default_rng(s).beta(alpha, alpha))


def test_no_mixing_gives_one_hot():
    x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 2, 1, 2])
    out, t = mix_batch(x, y, 3)
    assert out is x and t.tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 0], [0, 0, 1]]


def test_mixup_matches_a_hand_computation():
    x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    out, t = mix_batch(x, y, 4, mixup_alpha=0.4, generator=torch.Generator().manual_seed(7))
    lam = _lam_drawn(0.4, 7)
    assert torch.allclose(out[0], lam * x[0] + (1 - lam) * x[3], atol=1e-6)
    assert t[0].tolist() == pytest.approx([lam, 0, 0, 1 - lam], abs=1e-6)
    assert torch.allclose(t.sum(1), torch.ones(4))


def test_cutmix_box_area_sets_the_targets():
    x = torch.zeros(2, 1, 10, 10)
    x[1] = 1.0
    y = torch.tensor([0, 1])
    out, t = mix_batch(x, y, 2, cutmix_alpha=1.0, generator=torch.Generator().manual_seed(3))
    pasted = out[0].sum().item()  # image 0 is zeros: each pasted pixel of image 1 counts 1
    lam = 1 - pasted / 100
    assert t[0].tolist() == pytest.approx([lam, 1 - lam]) and t[1].tolist() == pytest.approx([1 - lam, lam])
    assert 0 < pasted < 100 and torch.allclose(t.sum(1), torch.ones(2))
    # the box by hand: side sqrt(1 - lam) of the image, centred where drawn, clipped
    y1, y2, x1, x2 = cutmix_box(10, 10, 0.75, torch.Generator().manual_seed(0))
    assert y2 - y1 <= 5 and x2 - x1 <= 5 and 0 <= y1 <= y2 <= 10 and 0 <= x1 <= x2 <= 10


def test_both_alphas_switch_and_are_seeded():
    x, y = torch.rand(8, 3, 16, 16), torch.arange(8) % 4
    a = mix_batch(x, y, 4, 0.2, 1.0, torch.Generator().manual_seed(1))
    b = mix_batch(x, y, 4, 0.2, 1.0, torch.Generator().manual_seed(1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    kinds = set()
    for s in range(20):
        out, _ = mix_batch(x, y, 4, 0.2, 1.0, torch.Generator().manual_seed(s))
        kinds.add("cutmix" if ((out == x) | (out == x.flip(0))).all() else "mixup")
    assert kinds == {"cutmix", "mixup"}
