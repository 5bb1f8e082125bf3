"""Every runtime available here against PyTorch eager fp32 on a zoo model with real weights.

Tolerances are explicit: fp32 runtimes agree to 1e-4 (relative to the embedding scale); bf16
ones are held to the same bar `--runtime auto` uses (`PARITY`) where they pass it, and to a
looser cosine of 0.99 otherwise (EfficientNet-Lite0's depthwise layers lose ~1e-3 in bf16, which
is why auto rejects bf16 for it).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from reslab.errors import ReslabError
from reslab.inference import load, open_session
from reslab.inference.auto import calibration_batch, parity
from reslab.inference.pooling import EmbeddingHead
from reslab.inference.runtimes import RUNTIMES, RuntimeChoice, build_session, candidates, precisions_of, unavailable_reason

BF16_MIN_COSINE = 0.99


@pytest.fixture(scope="module")
def lite0():
    return load("efficientnet_lite0", "imagenet")


@pytest.fixture(scope="module")
def photos(lite0):
    return calibration_batch(lite0.preprocess, 4)


@pytest.fixture(scope="module")
def reference(lite0, photos):
    return build_session(lite0, RuntimeChoice("torch", "fp32")).run(photos)


def all_choices():
    """Every (runtime, precision) but torch-compile (below, on a smaller net: it compiles for ~10 s)."""
    return [pytest.param(r, p, id=f"{r}-{p}") for r in RUNTIMES if r != "torch-compile" for p in precisions_of(r)]


@pytest.mark.parametrize("runtime, precision", all_choices())
def test_runtime_matches_torch_fp32(lite0, photos, reference, runtime, precision):
    reason = unavailable_reason(runtime)
    if reason is not None:
        pytest.skip(reason)
    try:
        session = build_session(lite0, RuntimeChoice(runtime, precision))
    except ReslabError as e:  # e.g. OpenVINO bf16 on a CPU without avx512_bf16 or AMX
        pytest.skip(str(e))
    embeddings, logits = session.run(photos)
    assert embeddings.shape == (4, 1280) and logits.shape == (4, 1000) and embeddings.dtype == np.float32
    cosine, top1 = parity(reference, (embeddings, logits))
    if precision == "fp32":
        scale = np.abs(reference[0]).max()
        np.testing.assert_allclose(embeddings, reference[0], atol=1e-4 * scale)
        assert top1 == 1.0
    else:
        assert cosine >= BF16_MIN_COSINE


@pytest.mark.slow
def test_torch_compile_matches_eager(resnet20, precision="fp32"):
    reason = unavailable_reason("torch-compile")
    if reason is not None:
        pytest.skip(reason)
    x = calibration_batch(resnet20.preprocess, 4)
    expected = build_session(resnet20, RuntimeChoice("torch", precision)).run(x)
    session = build_session(resnet20, RuntimeChoice("torch-compile", precision))
    for _ in range(2):  # the first call compiles, the second runs the compiled graph
        got = session.run(x)
    cosine, top1 = parity(expected, got)
    assert cosine >= 0.9999 and top1 == 1.0


def test_the_batch_axis_is_dynamic_on_exported_runtimes(resnet20):
    for choice in candidates():
        if choice.runtime in ("onnxruntime", "openvino") and choice.precision == "fp32":
            session = build_session(resnet20, choice)
            for batch in (1, 5):
                embeddings, logits = session.run(np.zeros((batch, 3, 32, 32), np.float32))
                assert embeddings.shape == (batch, 64) and logits.shape == (batch, 10)


def test_a_layer_session_embeds_that_layer_on_every_fp32_runtime(resnet20):
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    expected, _ = build_session(resnet20, RuntimeChoice("torch", "fp32"), EmbeddingHead("layer2")).run(x)
    assert expected.shape == (2, 32)
    for choice in candidates(precision="fp32"):
        if choice.runtime != "torch-compile":
            got, _ = build_session(resnet20, choice, EmbeddingHead("layer2")).run(x)
            np.testing.assert_allclose(got, expected, atol=1e-4)


def test_unknown_or_missing_runtimes_are_one_sentence(resnet20, monkeypatch):
    with pytest.raises(ReslabError, match="unknown runtime 'tensorrt'; choose auto or one of torch"):
        open_session(resnet20, "tensorrt")
    with pytest.raises(ReslabError, match="unknown precision 'fp16'; choose fp32 or bf16"):
        open_session(resnet20, "torch", "fp16")
    with pytest.raises(ReslabError, match="onnxruntime has no bf16 mode"):
        open_session(resnet20, "onnxruntime", "bf16")
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    with pytest.raises(ReslabError, match=r"runtime openvino is unavailable: openvino is not installed \(pip install 'reslab\[openvino\]'\)"):
        open_session(resnet20, "openvino")
    assert all(c.runtime != "openvino" for c in candidates())


def test_an_exported_file_runs_on_onnxruntime_and_openvino_only(resnet20, tmp_path):
    from reslab.inference.export import export_onnx_file

    path, _ = export_onnx_file(resnet20, tmp_path / "r20.onnx")
    exported = load(path)
    x = np.random.default_rng(1).standard_normal((3, 3, 32, 32)).astype(np.float32)
    expected = build_session(resnet20, RuntimeChoice("torch", "fp32")).run(x)
    for choice in candidates(exported=True, precision="fp32"):
        np.testing.assert_allclose(build_session(exported, choice).run(x)[1], expected[1], atol=1e-4)
    with pytest.raises(ReslabError, match="runs on onnxruntime or openvino"):
        open_session(exported, "torch")


def test_bf16_session_leaves_the_callers_network_alone(resnet20):
    import torch

    build_session(resnet20, RuntimeChoice("torch", "bf16")).run(np.zeros((1, 3, 32, 32), np.float32))
    conv = resnet20.network.conv1.weight
    assert conv.dtype == torch.float32 and conv.is_contiguous()  # not converted to channels_last in place


def test_openvino_sessions_leave_the_threads_signal_stack_alone(resnet20_file, tmp_path):
    """OpenVINO gives the thread that compiles its own alternate signal stack, and each compiled model
    puts back the one it found when it is released: released in another order than made (as auto's
    calibration does), the thread was left on freed memory and the next SIGTERM killed the process
    with SIGSEGV. Checked in a fresh process: a crash there must not take pytest with it."""
    import subprocess
    import sys

    if unavailable_reason("openvino") or not sys.platform.startswith("linux"):
        pytest.skip(unavailable_reason("openvino") or "sigaltstack is checked on Linux")
    script = f"""
import ctypes, faulthandler, gc, os, signal, numpy as np
from reslab.inference import load
from reslab.inference.runtimes import RuntimeChoice, build_session
from reslab.inference.signal_stack import _StackT
faulthandler.enable()  # gives the main thread an alternate stack, as pytest does
libc = ctypes.CDLL(None)
def current():
    st = _StackT()
    libc.sigaltstack(None, ctypes.byref(st))
    return (st.ss_sp, st.ss_flags, st.ss_size)
before = current()
m = load("resnet20", {str(resnet20_file)!r})
sessions = []
for precision in ("fp32", "fp32", "bf16"):
    try:
        sessions.append(build_session(m, RuntimeChoice("openvino", precision)))
        sessions[-1].run(np.zeros((2, 3, 32, 32), np.float32))
    except Exception:  # bf16 on a CPU without it
        pass
same_while_alive = current() == before
while sessions:
    sessions.pop(0)  # first made, first released
gc.collect()
reuse = [bytearray(20000) for _ in range(2000)]
handled = []
signal.signal(signal.SIGTERM, lambda *_: handled.append(1))
os.kill(os.getpid(), signal.SIGTERM)
print(same_while_alive, current() == before, handled == [1])
"""
    env = {**os.environ, "RESLAB_CACHE": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-2000:]}"
    assert out.stdout.strip().splitlines()[-1] == "True True True"


def test_onnxruntime_threads_do_not_spin_between_runs(resnet20):
    """Spinning idle threads took the cores from whatever ran next (benchmarks/runtime_interference.py)."""
    if unavailable_reason("onnxruntime") is not None:
        pytest.skip("onnxruntime is not installed")
    session = build_session(resnet20, RuntimeChoice("onnxruntime", "fp32"))
    options = session.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"
