"""Losses against hand computation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from reslab.train.losses import classification_loss, soft_target_cross_entropy


def _log_softmax_by_hand(row):
    m = max(row)
    lse = m + math.log(sum(math.exp(v - m) for v in row))
    return [v - lse for v in row]


def test_label_smoothing_against_hand_computation():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]])
    labels = torch.tensor([0, 1])
    eps, k = 0.1, 3
    expected = 0.0
    for row, y in zip(logits.tolist(), labels.tolist()):
        lp = _log_softmax_by_hand(row)
        target = [eps / k + (1 - eps) * (j == y) for j in range(k)]
        expected += -sum(t * v for t, v in zip(target, lp))
    expected /= 2
    assert classification_loss(logits, labels, label_smoothing=eps).item() == pytest.approx(expected, rel=1e-6)
    # the soft-target path with one-hot targets agrees with the hard-label path
    one_hot = F.one_hot(labels, k).float()
    assert soft_target_cross_entropy(logits, one_hot, eps).item() == pytest.approx(expected, rel=1e-6)


def test_mixup_soft_target_loss_is_the_mixture_of_the_two_losses():
    logits = torch.tensor([[1.0, 2.0, 0.0, -1.0]])
    lam = 0.7
    soft = torch.tensor([[lam, 0.0, 1 - lam, 0.0]])  # lam * class 0 + (1 - lam) * class 2
    lp = _log_softmax_by_hand(logits[0].tolist())
    expected = -(lam * lp[0] + (1 - lam) * lp[2])
    assert classification_loss(logits, soft).item() == pytest.approx(expected, rel=1e-6)


def test_mix_batch_targets_feed_the_loss():
    from reslab.data.mix import mix_batch

    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    mixed, soft = mix_batch(x, y, 4, mixup_alpha=0.4, generator=torch.Generator().manual_seed(0))
    assert soft.shape == (4, 4) and torch.allclose(soft.sum(1), torch.ones(4))
    logits = torch.randn(4, 4)
    lam = soft[0, 0].item()  # image 0 is mixed with its mirror, image 3
    by_hand = lam * F.cross_entropy(logits, y, reduction="none") + (1 - lam) * F.cross_entropy(logits, y.flip(0), reduction="none")
    assert classification_loss(logits, soft).item() == pytest.approx(by_hand.mean().item(), rel=1e-5)


def test_googlenet_tuple_loss_adds_weighted_aux_losses():
    main, aux2, aux1 = torch.randn(3, 5), torch.randn(3, 5), torch.randn(3, 5)
    y = torch.tensor([0, 4, 2])
    expected = F.cross_entropy(main, y) + 0.3 * (F.cross_entropy(aux1, y) + F.cross_entropy(aux2, y))
    assert classification_loss((main, aux2, aux1), y, aux_weight=0.3).item() == pytest.approx(expected.item(), rel=1e-6)
