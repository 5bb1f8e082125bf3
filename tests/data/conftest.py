"""Small datasets written into tmp_path: every format, and a folder with a zoo of bad files."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def random_rgb(rng: np.random.Generator, h: int = 32, w: int = 32) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def write_folder(root: Path, classes=("cat", "dog"), per_class=(6, 4), size=(32, 32), splits=("train",), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    for split in splits:
        for name, n in zip(classes, per_class):
            d = root / split / name if split else root / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                random_rgb(rng, size[1], size[0]).save(d / f"{i:03d}.png")
    return root


def write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


def write_mnist(root: Path, n_train=20, n_test=10, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    arrays = {}
    suffix = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        write_idx(root / f"{prefix}-images-idx3-ubyte{suffix}", images, gz)
        write_idx(root / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gz)
        arrays[prefix] = (images, labels)
    return arrays


def write_cifar10(root: Path, per_batch=8, seed=0):
    """The python-batch format: dicts with bytes keys, data (N, 3072) uint8 in CHW order."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        with open(root / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data, b"filenames": []}, f, protocol=2)
        batches[name] = (data, labels)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": names, b"num_cases_per_batch": per_batch}, f, protocol=2)
    return batches


def write_cifar100(root: Path, n_train=12, n_test=6, seed=0):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, n in (("train", n_train), ("test", n_test)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        fine = [int(v) for v in rng.integers(0, 100, n)]
        coarse = [int(v) for v in rng.integers(0, 20, n)]
        with open(root / name, "wb") as f:
            pickle.dump({b"data": data, b"fine_labels": fine, b"coarse_labels": coarse}, f, protocol=2)
        out[name] = (data, fine)
    with open(root / "meta", "wb") as f:
        pickle.dump({b"fine_label_names": [f"c{i:02d}".encode() for i in range(100)], b"coarse_label_names": []}, f, protocol=2)
    return out


def write_bad_zoo(root: Path, good_per_class: int = 20) -> dict:
    """train/{ants,bees}/ with good JPEGs plus every kind of bad and awkward file.

    Returns {"bad": [paths that cannot decode], "awkward": [paths that must decode]}.
    """
    rng = np.random.default_rng(1)
    for cls in ("ants", "bees"):
        d = root / "train" / cls
        d.mkdir(parents=True, exist_ok=True)
        for i in range(good_per_class):
            random_rgb(rng, 40, 48).save(d / f"good{i:02d}.jpg", quality=90)
    ants, bees = root / "train" / "ants", root / "train" / "bees"
    buf = io.BytesIO()
    random_rgb(rng, 40, 48).save(buf, format="JPEG", quality=90)
    (ants / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (ants / "empty.jpg").write_bytes(b"")
    (bees / "notes.jpg").write_text("<html>404 not found</html>")
    Image.new("CMYK", (48, 40), (0, 255, 255, 0)).save(bees / "cmyk.jpg")  # red in CMYK
    Image.fromarray((np.arange(40 * 48, dtype=np.uint16).reshape(40, 48) * 30).astype(np.uint16)).save(ants / "grey16.png")
    Image.new("RGB", (48, 40), (10, 200, 30)).convert("P", palette=Image.ADAPTIVE).save(bees / "palette.png")
    return {
        "bad": sorted(str(p) for p in (ants / "truncated.jpg", ants / "empty.jpg", bees / "notes.jpg")),
        "awkward": sorted(str(p) for p in (bees / "cmyk.jpg", ants / "grey16.png", bees / "palette.png")),
    }


@pytest.fixture
def bad_zoo(tmp_path):
    files = write_bad_zoo(tmp_path / "zoo")
    return tmp_path / "zoo", files


@pytest.fixture(autouse=True)
def _private_decode_cache(tmp_path, monkeypatch):
    # decoded arrays go to a per-test cache, never the user's ~/.cache
    monkeypatch.setenv("RESLAB_CACHE", str(tmp_path / "cache"))
