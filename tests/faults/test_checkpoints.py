"""Checkpoint attacks: malicious pickles of several shapes, foreign and damaged files, and a crash
between a checkpoint's temporary write and its rename.

Every file is refused with one sentence that says what it is (issue 12, defect 7: a malicious
pickle was reported as "may be truncated"); no payload ever runs.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from reslab.errors import ReslabError
from reslab.fileio import remove_stale_temporaries
from reslab.models import create_model
from reslab.train.checkpoint import load_checkpoint, save_checkpoint

from .cli_runs import environment


class _RunsCommand:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Evaluates:
    def __init__(self, code: str):
        self.code = code

    def __reduce__(self):
        return (eval, (self.code,))


def _write_attacks(folder: Path, sentinel: Path) -> dict[str, str]:
    """file name -> the words its refusal must contain."""
    touch = f"touch {sentinel}"
    files = {}

    def add(name, data, words):
        (folder / name).write_bytes(data)
        files[name] = words

    add("raw_reduce.pth", pickle.dumps(_RunsCommand(touch), protocol=2), "posix.system")
    for name, obj in [("zip_reduce.pth", {"state_dict": {"w": torch.ones(2)}, "extra": _RunsCommand(touch)}),
                      ("zip_eval.pt", _Evaluates(f"__import__('os').system('{touch}')")),
                      ("numpy_objects.pth", {"w": np.array([1, "x"], dtype=object)}),
                      ("whole_module.pth", create_model("resnet20"))]:
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        add(name, buffer.getvalue(), "Python objects")
    add("plain_pickle.pkl", pickle.dumps({"w": [1.0, 2.0]}, protocol=4), "plain Python pickle")
    add("html.pth", b"<html><body>404 Not Found</body></html>\n", "text")
    add("empty.pth", b"", "empty")
    good = io.BytesIO()
    torch.save({"w": torch.ones(1000)}, good)
    add("truncated.pth", good.getvalue()[: len(good.getvalue()) // 2], "truncated")
    from safetensors.torch import save

    tensors = save({"w": torch.ones(1000)})
    add("truncated.safetensors", tensors[: len(tensors) // 2], "truncated")
    add("huge_header.safetensors", (10**12).to_bytes(8, "little") + b"{}", "safetensors")
    return files


@pytest.fixture(scope="module")
def attacks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("attacks")
    sentinel = folder / "PAYLOAD-RAN"
    return folder, _write_attacks(folder, sentinel), sentinel


def test_every_attack_is_refused_as_what_it_is_and_never_runs(attacks):
    folder, files, sentinel = attacks
    for name, words in files.items():
        path = folder / name
        with pytest.raises(ReslabError) as refused:
            create_model("resnet20", weights=str(path))
        message = str(refused.value)
        assert str(path) in message and words in message and "\n" not in message, message
        if words in ("Python objects", "plain Python pickle"):
            assert "truncated" not in message and "could run" in message and "not loaded" in message, message
        if not name.endswith(".safetensors"):  # what `reslab train --resume FILE` loads
            with pytest.raises(ReslabError, match=words):
                load_checkpoint(path)
    assert not sentinel.exists(), "a payload ran"


def test_weights_given_to_resume_say_what_resume_needs(attacks, tmp_path):
    from reslab.fileio import atomic_save_safetensors

    path = tmp_path / "model.safetensors"
    atomic_save_safetensors({"w": torch.ones(2)}, path)
    with pytest.raises(ReslabError, match="holds weights only; resuming needs a training checkpoint"):
        load_checkpoint(path)


def test_the_cli_refuses_a_malicious_weights_file_in_one_line(attacks, tmp_path):
    folder, _, sentinel = attacks
    image = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (40, 40), (10, 20, 30)).save(image)
    out = subprocess.run([sys.executable, "-m", "reslab", "predict", "resnet20", "--weights", str(folder / "zip_reduce.pth"),
                          str(image)], capture_output=True, text=True, env=environment(), timeout=300)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "posix.system" in out.stderr
    assert not sentinel.exists()


CRASH_BEFORE_RENAME = textwrap.dedent("""
    import os, sys, torch
    from reslab.train.checkpoint import save_checkpoint

    def die(*args):  # the process is killed after the temporary file is written, before it replaces the old one
        os._exit(9)

    os.replace = die
    save_checkpoint(sys.argv[1], {"model": {"w": torch.zeros(3)}, "config": {}})
""")


def test_a_crash_between_write_and_rename_leaves_the_previous_checkpoint(tmp_path):
    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint(path, {"model": {"w": torch.ones(3)}, "config": {}})
    crashed = subprocess.run([sys.executable, "-c", CRASH_BEFORE_RENAME, str(path)], env=environment(), timeout=300)
    assert crashed.returncode == 9
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(3))
    (leftover,) = list(path.parent.glob(".last.pt.*.tmp"))  # the whole new checkpoint, never renamed
    assert leftover.stat().st_size > 0
    assert remove_stale_temporaries(path.parent) == [leftover] and [p.name for p in path.parent.iterdir()] == ["last.pt"]


@pytest.mark.parametrize("saved_from", ["resnet32", "resnet18", "mobilenet_v2"])
def test_weights_of_another_architecture_are_refused_naming_what_differs(saved_from, tmp_path):
    # (train --resume of another architecture: tests/train/test_engine.py)
    from safetensors.torch import save_file

    state = create_model(saved_from).state_dict()
    files = [tmp_path / "w.pth", tmp_path / "w.safetensors"]
    torch.save(state, files[0])
    save_file({k: v.contiguous() for k, v in state.items()}, files[1])
    for path in files:
        with pytest.raises(ReslabError) as refused:
            create_model("resnet20", weights=str(path))
        message = str(refused.value)
        assert f"{path} does not fit model 'resnet20'" in message and "keys" in message and "\n" not in message, message


def test_a_full_disk_during_a_checkpoint_is_one_sentence_and_keeps_the_previous_one(photo_folder, tmp_path, monkeypatch, capsys):
    import errno
    import json

    from reslab.cli import main

    real_save, calls = torch.save, []

    def save_until_the_disk_fills(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the second checkpoint (after epoch 2) meets a full disk halfway
            f.write(b"\0" * 100)
            raise OSError(errno.ENOSPC, "No space left on device")  # as a write() raises it: no file name
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_until_the_disk_fills)
    sets = [f'run.dir="{tmp_path}"', "run.progress=false", "run.tensorboard=false", "data.image_size=16",
            "data.in_memory=no", "data.workers=0", "train.batch_size=4", "train.epochs=3", "data.eval_split=none"]
    with pytest.raises(SystemExit) as ended:
        main(["train", "cifar_quick", "--data", str(photo_folder), "--name", "full-disk",
              *[a for s in sets for a in ("--set", s)]])
    err = capsys.readouterr().err
    assert ended.value.code == 1 and "Traceback" not in err
    assert "No space left on device" in err and "the checkpoint of step 4 is intact" in err and "--resume" in err, err
    run_dir = tmp_path / "full-disk"
    assert load_checkpoint(run_dir)["state"]["epoch"] == 1  # the first checkpoint, whole
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))  # the half-written one is gone
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "failed" and "No space left" in meta["error"] and meta["checkpoint_step"] == 4


def test_a_full_disk_during_embed_is_one_sentence_and_a_rerun_continues(photo_folder, tmp_path, monkeypatch, capsys):
    import contextlib
    import errno

    from reslab.cli import main
    from reslab.search import local_store, store

    @contextlib.contextmanager
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
        yield

    args = ["embed", str(photo_folder), "--out", str(tmp_path / "index"), "--method", "hist", "--workers", "0"]
    with monkeypatch.context() as patched:
        patched.setattr(store, "atomic_open", full)
        patched.setattr(local_store, "atomic_open", full)
        with pytest.raises(SystemExit) as ended:
            main(args)
    err = capsys.readouterr().err
    assert ended.value.code == 1 and "Traceback" not in err and "No space left on device" in err, err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1
    with pytest.raises(SystemExit) as again:  # room made: the same command finishes the index
        main([*args, "--json"])
    assert again.value.code in (0, None)
