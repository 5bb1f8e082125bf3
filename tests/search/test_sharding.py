"""Sharded extraction: 2 processes under torchrun (gloo, CPU) + merge == the single-process index."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reslab.search.embed import EmbedOptions, build_index
from reslab.search.index import SearchIndex
from reslab.search.sharding import merge_indexes, shard_dir
from reslab.search.walk import shard_of, walk_images

pytestmark = pytest.mark.data


def free_port() -> int:
    """A port nobody listens on now (a fixed one collides with other test runs on the same machine)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def items_and_vectors(index_dir):
    with SearchIndex.open(index_dir) as idx:
        return {it.id: (it.path, it.label) for it in idx.items()}, {it.path: idx.vector(it.id) for it in idx.items()}


def test_shard_assignment_is_stable_and_balanced():
    counts = np.bincount([shard_of(f"class{i % 7}/img{i}.jpg", 3) for i in range(3000)], minlength=3)
    assert counts.min() > 900  # close to 1000 each
    assert shard_of("a/b.jpg", 4) == shard_of("a/b.jpg", 4)


def test_torchrun_two_ranks_then_merge_equals_single_process(hymenoptera_root, tmp_path, lite0, photo_copier):
    photos = photo_copier(hymenoptera_root, tmp_path / "photos", 6, split="val")
    out = tmp_path / "sharded"
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [str(torchrun), "--nproc-per-node", "2", "--master-port", str(free_port()), "-m", "reslab", "embed", str(photos), "--out", str(out), "--workers", "0", "--device", "cpu"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    sizes = [len(SearchIndex.open(shard_dir(out, r))) for r in (0, 1)]
    assert sum(sizes) == 12 and min(sizes) > 0  # each rank did its share

    single = tmp_path / "single"
    build_index(photos, single, lite0, EmbedOptions(workers=0, progress=False))
    sharded_items, sharded_vectors = items_and_vectors(out)
    single_items, single_vectors = items_and_vectors(single)
    assert sharded_items == single_items  # same ids, paths and labels, in walk order
    for path, v in single_vectors.items():
        np.testing.assert_allclose(sharded_vectors[path], v, atol=1e-5)  # other batch sizes: float noise only

    # the merge step on its own (as after copying shard folders from several machines)
    again = merge_indexes([shard_dir(out, 0), shard_dir(out, 1)], tmp_path / "merged", EmbedOptions(progress=False))
    assert again.count == 12
    assert items_and_vectors(tmp_path / "merged")[0] == single_items
    assert [p.name for p in walk_images(photos)] == [Path(p).name for _, (p, _) in sorted(single_items.items())]
