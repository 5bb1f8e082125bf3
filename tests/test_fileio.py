import os

import pytest

from reslab.fileio import atomic_open, atomic_torch_save, atomic_write_text


def test_interrupted_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "result.txt"
    atomic_write_text(target, "good")
    with pytest.raises(RuntimeError):
        with atomic_open(target, "w") as f:
            f.write("half-writ")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["result.txt"]  # no temporary left behind


def test_atomic_files_get_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


def test_atomic_torch_save_round_trip(tmp_path):
    import torch

    atomic_torch_save({"w": torch.arange(3)}, tmp_path / "sub" / "ck.pt")
    assert torch.load(tmp_path / "sub" / "ck.pt", weights_only=True)["w"].tolist() == [0, 1, 2]
