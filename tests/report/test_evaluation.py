"""The report's evaluation pass against hand computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from reslab.report.evaluation import confusion_matrix, display_image, evaluate_for_report, most_confused_pairs


def test_most_confused_pairs_by_hand():
    cm = np.array([[8, 2, 0], [5, 5, 0], [1, 0, 9]])
    pairs = most_confused_pairs(cm, ["a", "b", "c"], k=5)
    assert pairs == [("b", "a", 5, 50.0), ("a", "b", 2, 20.0), ("c", "a", 1, 10.0)]


class Fixed(nn.Module):
    """Logits are the first three pixels of channel 0: predictions known in advance."""

    def forward_features(self, x):
        return x[:, :1, 0, :3]

    def forward_head(self, feats, pre_logits=False):
        return feats.flatten(1)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def test_evaluation_pass_matches_hand_counts():
    x = torch.zeros(6, 3, 2, 3)
    preds = [0, 1, 2, 2, 1, 0]
    for i, p in enumerate(preds):
        x[i, 0, 0, p] = 5.0
    labels = torch.tensor([0, 1, 2, 0, 0, 1])
    batches = [(x[:4], labels[:4]), (x[4:], labels[4:])]
    ev = evaluate_for_report(Fixed(), batches, num_classes=3, keep_images=3)
    assert ev.predictions.tolist() == preds
    assert np.array_equal(ev.confusion, confusion_matrix(labels.numpy(), np.array(preds), 3))
    assert ev.top1 == pytest.approx(100 * 3 / 6)
    assert ev.per_class_accuracy.tolist() == pytest.approx([100 / 3, 50.0, 100.0])
    expected_loss = nn.functional.cross_entropy(Fixed()(x), labels).item()
    assert ev.loss == pytest.approx(expected_loss, rel=1e-6)
    assert len(ev.kept_images) == 3 and sorted(ev.labels[ev.kept_index].tolist()) == [0, 1, 2]  # one per class


def test_display_image_undoes_normalisation():
    img = torch.rand(3, 4, 5)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    x = (img - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    assert np.allclose(display_image(x, mean, std), img.permute(1, 2, 0).numpy(), atol=1e-6)


def test_samples_are_taken_across_classes():
    from reslab.report.evaluation import across_classes

    labels = [0] * 7 + [1] * 7 + [2] * 7 + [3] * 7  # a loader sorted by class
    picked = across_classes(range(28), labels, 8)
    assert [labels[i] for i in picked] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert across_classes([3, 9], labels, 8) == [3, 9] and across_classes([], labels, 4) == []


def test_a_report_cut_to_max_images_sees_every_class(colour_data):
    """The val split is stored class by class (blue, green, red): 6 images cut from its 36 must be
    two of each class, not the first six blues."""
    from reslab.report.evaluation import eval_batches

    config = {"data": {"path": str(colour_data), "image_size": 16, "workers": 0}}
    data, batches = eval_batches(config, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), max_images=6)
    labels = torch.cat([y for _, y in batches])
    assert list(data.classes) == ["blue", "green", "red"]
    assert sorted(labels.tolist()) == [0, 0, 1, 1, 2, 2]
    _, everything = eval_batches(config, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), max_images=1000)
    assert len(torch.cat([y for _, y in everything])) == 36  # a split within the limit is whole
