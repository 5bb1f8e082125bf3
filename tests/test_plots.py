"""The shared plots are real PNGs with content, of a sensible size."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from reslab import plots


def _decoded(path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB"), dtype=float)


def _assert_has_content(path, min_w=200, min_h=150):
    pixels = _decoded(path)
    h, w, _ = pixels.shape
    assert w >= min_w and h >= min_h
    assert pixels.std() > 10  # not a blank canvas
    return pixels


def _rows(n, offset=0.0):
    return [
        {"epoch": e, "step": 10 * e, "lr": 0.1 * 0.5**e, "train_loss": 2 / e + offset, "train_top1": 40 + 5 * e,
         "val_loss": 2.2 / e + offset, "val_top1": 35 + 5 * e}
        for e in range(1, n + 1)
    ]


def test_training_curves_one_panel_per_metric(tmp_path):
    three = _assert_has_content(plots.plot_training_curves([("a", _rows(6)), ("b", _rows(4, 0.3))], tmp_path / "c.png"))
    one = _assert_has_content(plots.plot_training_curves([("a", _rows(6))], tmp_path / "d.png", metrics=("error",)))
    # three panels side by side are about three times as wide as one
    assert 2.3 < three.shape[1] / one.shape[1] < 3.7


def test_training_curves_without_validation_rows(tmp_path):
    rows = [{k: v for k, v in r.items() if not k.startswith("val_")} for r in _rows(3)]
    _assert_has_content(plots.plot_training_curves([("train only", rows)], tmp_path / "c.png"))


def test_unknown_curve_metric_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="accuracy"):
        plots.plot_training_curves([("a", _rows(2))], tmp_path / "c.png", metrics=("accuracy",))


def test_confusion_matrix_diagonal_is_darkest(tmp_path):
    cm = np.full((3, 3), 1) + np.diag([50, 50, 50])
    pixels = _assert_has_content(plots.plot_confusion_matrix(cm, ["ant", "bee", "cat"], tmp_path / "cm.png"))
    assert pixels.min() < 80  # dark blue cells exist


def test_confusion_matrix_shape_mismatch(tmp_path):
    with pytest.raises(ValueError, match="3 classes"):
        plots.plot_confusion_matrix(np.eye(2), ["a", "b", "c"], tmp_path / "cm.png")


def test_per_class_accuracy_and_grid(tmp_path):
    _assert_has_content(plots.plot_per_class_accuracy([90.0, 40.0, 75.5], ["a", "b", "c"], tmp_path / "pc.png"))
    rng = np.random.default_rng(0)
    images = [rng.random((16, 16, 3)) for _ in range(5)]
    _assert_has_content(plots.plot_image_grid(images, tmp_path / "g.png", captions=list("abcde"), columns=3), 150, 150)


def test_bars_beside_reference(tmp_path):
    _assert_has_content(plots.plot_bars_with_errors(["r20", "r56"], [8.9, 7.1], [0.2, 0.3], tmp_path / "b.png",
                                                    ylabel="error (%)", reference=[8.75, 6.97]))


def test_write_is_atomic_on_failure(tmp_path):
    target = tmp_path / "keep.png"
    target.write_bytes(b"old")
    with pytest.raises(ValueError):
        plots.plot_confusion_matrix(np.eye(2), ["a"], target)
    assert target.read_bytes() == b"old"


def test_many_classes_stay_readable(tmp_path):
    # ImageNet-sized: the bar chart keeps the 20 worst and 20 best, so its height stays bounded
    rng = np.random.default_rng(0)
    names = [f"class{i}" for i in range(1000)]
    small = _decoded(plots.plot_per_class_accuracy(rng.random(10) * 100, names[:10], tmp_path / "s.png"))
    large = _decoded(plots.plot_per_class_accuracy(rng.random(1000) * 100, names, tmp_path / "l.png"))
    assert large.shape[0] < 5 * small.shape[0]
    cm = rng.integers(0, 5, (200, 200))
    _assert_has_content(plots.plot_confusion_matrix(cm, names[:200], tmp_path / "cm.png"))


def test_one_diverging_loss_does_not_flatten_the_others(tmp_path, monkeypatch):
    rows = _rows(8)
    rows[2]["val_loss"] = 92.9  # one epoch that blew up
    rows[4]["val_loss"] = 3e7  # and one that went to the moon
    axes = []
    real_subplots = plots.pyplot().subplots

    def keep_axes(*a, **k):
        fig, ax = real_subplots(*a, **k)
        axes.append(ax)
        return fig, ax

    monkeypatch.setattr(plots.pyplot(), "subplots", keep_axes)
    plots.plot_training_curves([("net", rows)], tmp_path / "c.png", metrics=("loss",))
    ax = axes[0][0][0]
    low, high = ax.get_ylim()
    assert ax.get_yscale() == "log"  # each decade as tall as the next: small losses stay readable
    assert low < min(r["train_loss"] for r in rows) and 92.9 < high < 3e7  # 92.9 on the scale, 3e7 above it
    assert [t.get_text() for t in ax.texts if t.get_text() != "▲ off the scale"] == ["3e+07"]  # marked with its value
    plots.plot_training_curves([("net", _rows(8))], tmp_path / "d.png", metrics=("loss",))
    assert not axes[1][0][0].texts  # nothing off the scale: nothing marked


def test_zoo_labels_do_not_overlap(tmp_path, monkeypatch):
    from reslab.analysis import zoo

    rows = [{"name": n, "family": f, "params": p * 1e6, "macs": m * 1e9, "gmacs": m}
            for n, f, p, m in [("vgg11", "vgg", 132.9, 7.6), ("vgg11_bn", "vgg", 132.9, 7.6), ("vgg13", "vgg", 133.0, 11.3),
                               ("vgg16", "vgg", 138.4, 15.5), ("vgg19", "vgg", 143.7, 19.6), ("resnet20", "cifar_resnet", 0.27, 0.041),
                               ("plain20", "cifar_plain", 0.27, 0.041), ("resnet152", "resnet", 60.2, 11.5),
                               ("wide_resnet50_2", "resnet", 68.9, 11.4), ("resnext101_32x8d", "resnet", 88.8, 16.4)]]  # fmt: skip
    placed = []
    real = zoo._place_labels

    def spy(fig, ax, labels):
        real(fig, ax, labels)
        renderer = fig.canvas.get_renderer()
        placed.extend((t.get_text(), t.get_window_extent(renderer)) for t in ax.texts)

    monkeypatch.setattr(zoo, "_place_labels", spy)
    _assert_has_content(zoo.plot_params_vs_macs(rows, tmp_path / "zoo.png"))
    texts = [t for t, _ in placed]
    assert "vgg11 (+bn)" in texts and "plain20 / resnet20" in texts and len(texts) == 8
    boxes = [b for _, b in placed]
    assert not any(zoo._overlap(a, b) > 0 for i, a in enumerate(boxes) for b in boxes[i + 1 :])
