"""Retrieval metrics against hand computation."""

import numpy as np
import pytest

from reslab.search.retrieval import query_metrics, retrieval_scores


def test_query_metrics_by_hand():
    # ranking: R N R N N R, 3 relevant items in all
    relevant = np.array([1, 0, 1, 0, 0, 1], bool)
    p, r, ap = query_metrics(relevant, 3, [1, 2, 5])
    assert p == {1: 1.0, 2: 0.5, 5: 0.4}
    assert r == pytest.approx({1: 1 / 3, 2: 1 / 3, 5: 2 / 3})
    # AP = (1/1 + 2/3 + 3/6) / 3
    assert ap == pytest.approx((1 + 2 / 3 + 0.5) / 3)


def test_leave_one_out_scores_by_hand():
    # four points on a circle: a0, a1 close together; b0 near a1; b1 far away
    angles = np.radians([0, 20, 50, 180])
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    labels = ["a", "a", "b", "b"]
    s = retrieval_scores(vectors, labels, [1, 2])
    # rankings (others by similarity):
    # a0: a1(20) b0(50) b1(180)   -> R N N  : P@1 1, P@2 .5, R@1 1, AP 1
    # a1: a0(20) b0(30) b1(160)   -> R N N  : P@1 1, P@2 .5, R@1 1, AP 1
    # b0: a1(30) a0(50) b1(130)   -> N N R  : P@1 0, P@2 0,  R@2 0, AP 1/3
    # b1: b0(130) a1(160) a0(180) -> R N N  : P@1 1, P@2 .5, R@1 1, AP 1
    assert s.queries == 4
    assert s.precision[1] == pytest.approx(3 / 4)
    assert s.precision[2] == pytest.approx(0.5 * 3 / 4)
    assert s.recall[1] == pytest.approx(3 / 4)
    assert s.recall[2] == pytest.approx(3 / 4)
    assert s.mean_ap == pytest.approx((1 + 1 + 1 / 3 + 1) / 4)


def test_singleton_labels_are_not_queries():
    vectors = np.eye(3, dtype=np.float32)
    s = retrieval_scores(vectors, ["a", "a", "c"], [1])
    assert s.queries == 2  # "c" has nothing to find
