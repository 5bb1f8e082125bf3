"""`--runtime auto`: measured once per key, cached and re-used; unfaithful or missing runtimes never chosen."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from reslab.inference import auto, cache, open_session, runtimes
from reslab.inference.runtimes import RuntimeChoice


@pytest.fixture
def fresh_cache():
    """No runtime decisions yet (the exports stay: they are not what these tests are about)."""
    import shutil

    shutil.rmtree(cache.cache_root() / auto.DECISIONS, ignore_errors=True)
    return cache.cache_root()


def decisions(root) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((root / auto.DECISIONS).glob("*.json"))]


def test_measured_once_then_reused(resnet20, fresh_cache, monkeypatch):
    lines = []
    first = open_session(resnet20, "auto", batch_size=2, say=lines.append)
    assert "measured now" in lines[0] and str(first.choice) in lines[0] and "images/s" in lines[0]
    [record] = decisions(fresh_cache)
    measured = {m["choice"]: m for m in record["measurements"]}
    assert record["choice"] == str(first.choice) and "torch fp32" in measured
    assert all(m["images_per_s"] > 0 for m in measured.values() if m["accepted"])
    chosen = measured[record["choice"]]
    assert chosen["images_per_s"] == max(m["images_per_s"] or 0 for m in measured.values() if m["accepted"])

    monkeypatch.setattr(auto, "calibrate", lambda *a, **k: pytest.fail("a cached decision must not be measured again"))
    again = open_session(resnet20, "auto", batch_size=2, say=lines.append)
    assert again.choice == first.choice and "cached in" in lines[1] and "measured now" not in lines[1]


def test_the_decision_is_per_batch_size_and_weights(resnet20, fresh_cache):
    from reslab.inference import load

    open_session(resnet20, "auto", batch_size=2, say=lambda _: None)
    open_session(resnet20, "auto", batch_size=3, say=lambda _: None)
    open_session(load("resnet20"), "auto", batch_size=2, say=lambda _: None)  # other (random) weights
    keys = [(d["key"]["batch"], d["key"]["weights_sha256"]) for d in decisions(fresh_cache)]
    assert len(set(keys)) == 3


def test_a_runtime_that_does_not_match_fp32_is_never_chosen(resnet20, fresh_cache, monkeypatch):
    real = runtimes.build_session

    class Noisy(runtimes.Session):
        """A runtime 100x faster than anything, whose embeddings are off by a few percent."""

        def __init__(self, inner):
            self.inner, self.choice, self.device = inner, inner.choice, inner.device

        def run(self, images):
            embeddings, logits = self.inner.run(images)
            noise = np.random.default_rng(0).standard_normal(embeddings.shape).astype(np.float32)
            return embeddings + 0.1 * np.abs(embeddings).mean() * noise, logits

    def build(loaded, choice, head=None, threads=None):
        session = real(loaded, choice, head, threads)
        return Noisy(session) if choice == RuntimeChoice("torch", "bf16") else session

    monkeypatch.setattr(auto, "build_session", build)
    session = open_session(resnet20, "auto", batch_size=2, say=lambda _: None)
    assert session.choice != RuntimeChoice("torch", "bf16")
    [record] = decisions(fresh_cache)
    rejected = {m["choice"]: m for m in record["measurements"] if not m["accepted"]}
    assert rejected["torch bf16"]["cosine"] < auto.PARITY.min_cosine and "rejected torch bf16" in record["why"]


def test_missing_runtimes_fall_back_and_a_vanished_choice_is_measured_again(resnet20, fresh_cache, monkeypatch):
    first = open_session(resnet20, "auto", batch_size=2, say=lambda _: None)
    real = importlib.util.find_spec
    gone = {"onnxruntime", "openvino"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in gone else real(name, *a))
    lines = []
    session = open_session(resnet20, "auto", batch_size=2, say=lines.append)
    assert session.choice.runtime == "torch" and "measured now" in lines[0]
    if first.choice.runtime == "torch":  # the same choice, but the options differ: another key
        assert len(decisions(fresh_cache)) == 2


def test_a_damaged_decision_is_measured_again(resnet20, fresh_cache):
    open_session(resnet20, "auto", batch_size=2, say=lambda _: None)
    [path] = (fresh_cache / auto.DECISIONS).glob("*.json")
    path.write_text("{ not json")
    lines = []
    open_session(resnet20, "auto", batch_size=2, say=lines.append)
    assert "measured now" in lines[0] and cache.read_json(path)["choice"]


def test_precision_narrows_the_candidates(resnet20, fresh_cache):
    session = open_session(resnet20, "auto", "fp32", batch_size=2, say=lambda _: None)
    assert session.choice.precision == "fp32"
    [record] = decisions(fresh_cache)
    assert all(o.endswith("fp32") for o in record["key"]["options"])
    assert not any(o.startswith("torch-compile") for o in record["key"]["options"])  # see auto.NOT_IN_AUTO
