import numpy as np
import pytest

from reslab.train.calibration import calibration_bins, expected_calibration_error


def test_ece_by_hand():
    # four images at confidence 0.9 (bin 13 of 15), three right: |0.75 - 0.9| = 0.15 for all of them;
    # two at confidence 0.6 (bin 8), both right: |1.0 - 0.6| = 0.4; ECE = (4 * 0.15 + 2 * 0.4) / 6
    probs = np.array([[0.9, 0.1]] * 4 + [[0.4, 0.6]] * 2)
    labels = np.array([0, 0, 0, 1, 1, 1])
    assert expected_calibration_error(probs, labels) == pytest.approx(100 * (4 * 0.15 + 2 * 0.4) / 6)
    bins = calibration_bins(probs, labels)
    assert sum(b["count"] for b in bins) == 6
    assert [b["count"] for b in bins if b["count"]] == [2, 4]


def test_perfectly_calibrated_and_confidently_wrong():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1.0, 200000)
    labels = (rng.uniform(size=conf.size) >= conf).astype(int)  # right with probability = confidence
    probs = np.stack([conf, 1 - conf], axis=1)
    assert expected_calibration_error(probs, labels) < 0.5
    wrong = np.array([[0.99, 0.01]] * 10)
    assert expected_calibration_error(wrong, np.ones(10, dtype=int)) == pytest.approx(99.0)
