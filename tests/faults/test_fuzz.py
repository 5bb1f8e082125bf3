"""Property-based fuzzing (Hypothesis): the config parser, the web API's parameters and uploads, and
the data-format readers answer anything with a result or one clear error: a ReslabError in Python,
a 4xx over HTTP; never another exception, never a 500.

Few examples each (the suite's time budget); `derandomize` keeps CI runs reproducible, and a
failing example is printed by Hypothesis for a regression test.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

import torch

from reslab.data import DataConfig, build_data
from reslab.data.formats import open_source
from reslab.errors import ReslabError
from reslab.train.config import config_from_dict, config_to_dict, config_to_toml, load_config

FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
KEYS = sorted(f"{section}.{key}" for section, values in config_to_dict(load_config()).items() for key in values)

toml_values = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["true", "false", "nan", "inf", "-inf", "[]", "[1, 2]", "{a = 1}", '"x"', "''", "[[1]]", "1e999",
                     "0x10", "1_000", "2024-01-01", '"\\u0000"', "[1, \"a\"]", "{}", "=", "[", "\"unterminated"]),
    st.text(max_size=30),
)


@FUZZ
@given(key=st.one_of(st.sampled_from(KEYS), st.text(max_size=20)), value=toml_values)
def test_a_set_override_is_applied_or_refused_in_one_sentence(key, value):
    try:
        cfg = load_config(None, [f"{key}={value}"])
    except ReslabError as e:
        assert str(e) and "\n" not in str(e).strip()
        return
    # whatever loads is written back as TOML that loads to the same config (config.toml of a run)
    again = config_from_dict(__import__("tomllib").loads(config_to_toml(cfg)))
    assert _same(config_to_dict(again), config_to_dict(cfg))


def _same(a, b) -> bool:  # NaN equals NaN here: a config that says nan keeps saying it
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (a != a and b != b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@FUZZ
@given(text=st.one_of(st.text(max_size=200), st.sampled_from([
    "[train]\nepochs = 5\nsteps = 9\n", "[model]\nname = 3\n", "[train\n", "model = 1\n", "[data]\nmean = [1, 2]\n",
    "[optim]\nlr = \"fast\"\n", "[train]\nbatch_size = -4\n", "[schedule]\nmilestones = [[1]]\n", "\x00",
    "[run]\n[run]\n", "[train]\nepochs = 1e400\n", "[data]\nimage_size = 0\n"])))
def test_a_recipe_file_loads_or_is_refused_in_one_sentence(text):
    with tempfile.TemporaryDirectory() as folder:
        recipe = Path(folder) / "recipe.toml"
        recipe.write_bytes(text.encode("utf-8", "surrogatepass"))
        try:
            load_config(recipe)
        except ReslabError as e:
            assert str(e)


# ----------------------------------------------------------------------------------- data readers


def _idx_bytes(body: bytes, dims: list[int], magic: bytes) -> bytes:
    return magic + bytes([len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + body


@FUZZ
@example(images=_idx_bytes(b"\x00" * 8, [2, 2, 2], b"\x00\x00\x08"), labels=_idx_bytes(b"\x00\x07", [2], b"\x00\x00\x08"),
         gz=False, cut=0)
@example(images=b"\x00\x00\x08\x03\x00", labels=b"", gz=False, cut=0)  # a header cut inside its dimensions
@example(images=_idx_bytes(b"", [2**31, 2**31, 4], b"\x00\x00\x08"), labels=b"", gz=False, cut=0)
@given(
    images=st.one_of(st.binary(max_size=64), st.builds(_idx_bytes, st.binary(max_size=64),
                                                       st.lists(st.integers(0, 2**32 - 1), max_size=4),
                                                       st.sampled_from([b"\x00\x00\x08", b"\x00\x00\x09", b"\x01\x00\x08"]))),
    labels=st.binary(max_size=16),
    gz=st.booleans(),
    cut=st.integers(0, 40),
)
def test_idx_files_load_or_are_refused(images, labels, gz, cut):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        suffix = ".gz" if gz else ""
        if gz:  # a gzip stream, sometimes cut short
            images, labels = gzip.compress(images)[: len(gzip.compress(images)) - cut], gzip.compress(labels)
        (root / f"train-images-idx3-ubyte{suffix}").write_bytes(images)
        (root / f"train-labels-idx1-ubyte{suffix}").write_bytes(labels)
        _open_or_refuse(root, "mnist")


@FUZZ
@example(rows=[["a.png", "99999999999"]], raw=b"")  # an integer label far past the rows: no 10^11 classes
@example(rows=[["a.png", "--5"], ["b.png", "1"]], raw=b"")
@example(rows=[["a.png", "cat", "holdout"]], raw=b"")
@given(rows=st.lists(st.lists(st.text(max_size=12), min_size=0, max_size=4), max_size=8), raw=st.binary(max_size=40))
def test_csv_lists_load_or_are_refused(rows, raw):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "list.csv"
        text = "\n".join(",".join(r) for r in rows)
        path.write_bytes(text.encode("utf-8", "surrogatepass") + raw)
        _open_or_refuse(path, "csv")


cifar_values = st.one_of(
    st.builds(lambda n, k: np.zeros((n, k), np.uint8), st.integers(0, 3), st.sampled_from([3072, 3071, 10])),
    st.lists(st.integers(-3, 300), max_size=5),
    st.text(max_size=5), st.none(), st.integers(), st.binary(max_size=8),
)


@FUZZ
@example(batch={b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 5]}, protocol=2, meta=True)  # label 5 of 2 classes
@example(batch={b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, -1]}, protocol=2, meta=False)
@example(batch={b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, protocol=2, meta=False)
@given(batch=st.one_of(st.dictionaries(st.sampled_from([b"data", b"labels", "data", b"other"]), cifar_values, max_size=3),
                       st.lists(st.integers(), max_size=3), st.binary(max_size=30)),
       protocol=st.integers(0, 4), meta=st.booleans())
def test_cifar_batches_load_or_are_refused(batch, protocol, meta):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        data = batch if isinstance(batch, bytes) else pickle.dumps(batch, protocol=protocol)
        (root / "data_batch_1").write_bytes(data)
        if meta:
            (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a", b"b"]}))
        _open_or_refuse(root, "cifar")


def _open_or_refuse(path: Path, fmt: str) -> None:
    """The data open for `reslab data verify` (which lists odd rows) and for training (which refuses them)."""
    try:
        source = open_source(path, fmt)
    except ReslabError as e:
        assert str(e)
        return
    assert all(len(split.labels) == len(split) for split in source.splits.values())
    try:
        data = build_data(DataConfig(path=str(path), format=fmt, eval_split="none", cache_decoded=False), 1, seed=0)
    except ReslabError as e:
        assert str(e)
        return
    labels = data.train.labels if hasattr(data.train, "labels") else torch.as_tensor(data.train.split.labels)
    assert 0 <= int(labels.min()) and int(labels.max()) < len(data.classes)  # what trains has labels within the classes


# --------------------------------------------------------------------------------------- web API


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from fastapi.testclient import TestClient

    from reslab.search.embed import EmbedOptions, build_index
    from reslab.embeddings import make_embedder
    from reslab.web.app import create_app

    base = tmp_path_factory.mktemp("fuzz-index")
    rng = np.random.default_rng(0)
    for i in range(6):
        (base / "photos" / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(base / "photos" / f"c{i % 2}" / f"{i}.png")
    build_index(base / "photos", base / "index", make_embedder("hist"), EmbedOptions(workers=0, progress=False))
    with TestClient(create_app(base / "index", max_upload_bytes=50_000), raise_server_exceptions=False) as c:
        yield c


numbers = st.one_of(st.integers(), st.integers(min_value=-(2**80), max_value=2**80), st.floats().map(repr),
                    st.text(max_size=12), st.sampled_from(["", "1e3", "0x1", "1.0", "nan", "-0", "٣", "%00", "..", "1/2"]))


@FUZZ
@given(item=numbers, offset=numbers, limit=numbers, k=numbers, size=numbers)
def test_api_parameters_never_give_a_500(client, item, offset, limit, k, size):
    from urllib.parse import quote

    segment = quote(str(item), safe="")
    for url, params in [(f"/api/items/{segment}", {}), (f"/api/items/{segment}/similar", {"k": str(k)}),
                        (f"/api/image/{segment}", {"size": str(size)}), ("/api/items", {"offset": str(offset), "limit": str(limit)})]:
        answer = client.get(url, params=params)
        assert answer.status_code in (200, 404, 422), (url, params, answer.status_code, answer.text[:200])
        assert answer.headers["content-type"].startswith(("application/json", "image/"))


def _image_bytes(fmt: str, size: tuple[int, int], mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 128 if mode in ("L", "P") else (10, 20, 30)[: len(mode)] if mode != "CMYK" else (1, 2, 3, 4)).save(buffer, format=fmt)
    return buffer.getvalue()


uploads = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda data, cut, flip: bytearray(data[:max(1, len(data) - cut)]) if not flip else
              bytes(b ^ 0xFF if i == len(data) // 2 else b for i, b in enumerate(data)),
              st.builds(_image_bytes, st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"]),
                        st.tuples(st.integers(1, 64), st.integers(1, 64)), st.sampled_from(["RGB", "L"])),
              st.integers(0, 200), st.booleans()),
)


@FUZZ
@given(data=uploads, filename=st.text(max_size=20), k=numbers)
def test_uploads_never_give_a_500(client, data, filename, k):
    answer = client.post("/api/search", files={"image": (filename or "upload", bytes(data), "application/octet-stream")},
                         data={"k": str(k)})
    assert answer.status_code in (200, 413, 415, 422), (answer.status_code, answer.text[:200])
    if answer.status_code == 415:
        assert "object at 0x" not in answer.json()["detail"]
