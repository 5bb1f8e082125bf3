"""The weighted kNN vote against a brute-force reference written with Python loops."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from reslab.ssl.knn import knn_accuracy, knn_predict


def brute_force_knn(query, bank, bank_labels, num_classes, k, t, exclude_self=False):
    """For each query: sort every bank row by cosine similarity, take k, add exp(s / t) per class."""
    preds = []
    for i, q in enumerate(query.tolist()):
        sims = []
        for j, b in enumerate(bank.tolist()):
            if exclude_self and i == j:
                continue
            sims.append((sum(x * y for x, y in zip(q, b)), int(bank_labels[j])))
        sims.sort(key=lambda s: -s[0])
        votes = [0.0] * num_classes
        for s, label in sims[:k]:
            votes[label] += math.exp(s / t)
        preds.append(max(range(num_classes), key=lambda c: votes[c]))
    return preds


@pytest.mark.parametrize("k,exclude_self", [(1, False), (7, False), (200, False), (7, True)])
def test_knn_matches_brute_force(k, exclude_self):
    g = torch.Generator().manual_seed(0)
    bank = F.normalize(torch.randn(60, 6, generator=g), dim=1)
    labels = torch.randint(0, 4, (60,), generator=g)
    query = bank.clone() if exclude_self else F.normalize(torch.randn(25, 6, generator=g), dim=1)
    scores = knn_predict(query, bank, labels, 4, k=k, temperature=0.1, exclude_self=exclude_self, chunk=8)
    assert scores.argmax(1).tolist() == brute_force_knn(query, bank, labels, 4, k, 0.1, exclude_self)


def test_knn_weights_close_neighbours_more():
    # one very close neighbour of class 1 outvotes two far ones of class 0 at temperature 0.1
    bank = F.normalize(torch.tensor([[1.0, 0.05], [0.0, 1.0], [0.1, 1.0]]), dim=1)
    labels = torch.tensor([1, 0, 0])
    query = torch.tensor([[1.0, 0.0]])
    assert knn_predict(query, bank, labels, 2, k=3, temperature=0.1).argmax(1).item() == 1
    # unweighted majority (a huge temperature) would pick class 0
    assert knn_predict(query, bank, labels, 2, k=3, temperature=1e6).argmax(1).item() == 0


def test_knn_accuracy_of_separable_clusters():
    g = torch.Generator().manual_seed(1)
    centres = F.normalize(torch.randn(3, 16, generator=g), dim=1) * 5
    labels = torch.arange(90) % 3
    feats = F.normalize(centres[labels] + 0.3 * torch.randn(90, 16, generator=g), dim=1)
    res = knn_accuracy(feats[:60], labels[:60], feats[60:], labels[60:], 3, k=10)
    assert res["knn_top1"] == 100.0 and res["count"] == 60
    shuffled = knn_accuracy(feats[:60], labels[:60], feats[60:], labels[60:][torch.randperm(30, generator=g)], 3, k=10)
    assert shuffled["knn_top1"] < 70
