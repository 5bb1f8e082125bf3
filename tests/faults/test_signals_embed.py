"""Signals x phases for `reslab embed`: stopped four times (SIGTERM to the group during a commit,
Ctrl-C to the group while a worker decodes, SIGTERM to the main process alone while a worker
decodes, kill -9 between a vector shard and its transaction),
rerun each time, the index ends with every file once and the vectors of an uninterrupted build.

The guarantees checked (docs/search.md states them):
- SIGINT or SIGTERM, to the process or its group: the items embedded so far are committed, the
  manifest says "interrupted" and which signal, the exit status is 130 or 143;
- SIGKILL: at most the chunk in flight is lost; its orphan vector shard is removed by the next run;
- no decode worker outlives the run; a rerun embeds only what is missing, with no duplicate.
"""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from PIL import Image

from reslab.search.embed import EmbedOptions, build_index
from reslab.embeddings import make_embedder
from reslab.search.index import SearchIndex

from .cli_runs import run

pytestmark = [pytest.mark.slow, pytest.mark.skipif(__import__("sys").platform != "linux", reason="Linux process groups")]

FILES = 48


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    root = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(3)
    for i in range(FILES):
        folder = root / ("red" if i % 2 else "blue")
        folder.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    return root


def _committed(index) -> int:
    with sqlite3.connect(index / "items.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM items").fetchone()[0]


def _manifest(index) -> dict:
    return json.loads((index / "manifest.json").read_text())


def _vectors(index) -> dict[str, np.ndarray]:
    with SearchIndex.open(index) as idx:
        items = list(idx.items())
        assert len({it.path for it in items}) == len(items), "a file is indexed twice"
        return {it.path: idx.vector(it.id) for it in items}


def test_four_stops_and_reruns_build_the_same_index(pictures, tmp_path):
    reference = tmp_path / "reference"
    build_index(pictures, reference, make_embedder("hist"), EmbedOptions(workers=0, progress=False))

    index = tmp_path / "index"
    args = ["embed", str(pictures), "--out", str(index), "--method", "hist", "--workers", "2",
            "--chunk-size", "8", "--batch-size", "4"]

    # 1. SIGTERM to the group in the middle of the second commit: that commit completes
    out = run(args, tmp_path / "p1", pause=("commit", 2), send="SIGTERM-group")
    assert out.returncode == 143 and out.left_behind == [], out.output[-3000:]
    assert "Traceback" not in out.output
    assert _manifest(index)["status"] == "interrupted" and _manifest(index)["signal"] == "SIGTERM"
    first = _committed(index)
    assert first == 16

    # 2. Ctrl-C to the group while a decode worker works: what was embedded is committed
    out = run(args, tmp_path / "p2", pause=("decode", 2), send="SIGINT-group")
    assert out.returncode == 130 and out.left_behind == [], out.output[-3000:]
    assert _manifest(index)["signal"] == "SIGINT" and _committed(index) >= first

    # 3. SIGTERM to the main process only (`kill PID`) while its first decode is in a worker
    before = _committed(index)
    out = run(args, tmp_path / "p3", pause=("decode", 1), send="SIGTERM")
    assert out.returncode == 143 and out.left_behind == [], out.output[-3000:]
    assert _manifest(index)["signal"] == "SIGTERM" and _committed(index) >= before

    # 4. kill -9 between a chunk's vector shard and its transaction: the workers die with the run
    before = _committed(index)
    out = run(args, tmp_path / "p4", pause=("commit", 1), send="SIGKILL")
    assert out.returncode == -9 and out.left_behind == [], out.output[-3000:]
    assert _committed(index) == before  # the chunk in flight is lost, nothing is half-committed
    with sqlite3.connect(index / "items.sqlite") as db:
        known = {r[0] for r in db.execute("SELECT file FROM shards")}
    assert {p.name for p in (index / "vectors").iterdir()} - known, "the pause was not between shard and commit"

    # 5. the last rerun finishes: every file once, the vectors of an uninterrupted build
    out = run(args + ["--json"], tmp_path / "p5")
    assert out.returncode == 0, out.output[-3000:]
    assert _manifest(index)["status"] == "complete" and _committed(index) == FILES
    with sqlite3.connect(index / "items.sqlite") as db:
        known = {r[0] for r in db.execute("SELECT file FROM shards")}
    assert {p.name for p in (index / "vectors").iterdir()} == known  # the orphan shard is gone
    expected, got = _vectors(reference), _vectors(index)
    assert got.keys() == expected.keys()
    assert all(np.array_equal(got[p], expected[p]) for p in expected)
