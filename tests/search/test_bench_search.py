"""`reslab bench search`: FAISS against exact search, and with --store milvus the Milvus store beside it."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from .test_cli_search import run_cli


def test_bench_search_saves_faiss_numbers_with_their_command_and_machine(tmp_path, capsys):
    code, out, err = run_cli(capsys, "bench", "search", "--n", "3000", "--queries", "20", "--kinds", "flat,hnsw", "--out", tmp_path)
    assert code == 0, err
    result = json.loads((tmp_path / "bench_search_3000x512_flat-hnsw.json").read_text())
    assert result["command"].startswith("reslab bench search --n 3000")
    assert "load_average" in result["provenance"]["machine"] and "cpu_flags" in result["provenance"]["machine"]
    assert result["kinds"]["flat"]["recall_at_k"] == 1.0  # the baseline is exact by definition
    assert 0.5 < result["kinds"]["hnsw"]["recall_at_k"] <= 1.0
    assert 2048 <= result["kinds"]["flat"]["bytes_per_vector"] < 2300  # 512 float32 + an id each


@pytest.mark.slow
def test_bench_search_measures_milvus_and_index_copy_both_ways(tmp_path, capsys):
    pytest.importorskip("milvus_lite", reason="the Milvus store needs milvus-lite (pip install 'reslab[milvus]')")
    before = set(Path(tempfile.gettempdir()).glob("reslab-bench-milvus-*"))
    code, out, err = run_cli(capsys, "bench", "search", "--n", "1500", "--queries", "10", "--kinds", "flat", "--store", "milvus", "--out", tmp_path)
    assert code == 0, err
    result = json.loads((tmp_path / "bench_search_milvus_1500x512_flat.json").read_text())
    milvus = result["milvus"]
    assert milvus["kinds"]["flat"]["recall_at_k"] == 1.0  # exact search in Milvus finds FAISS's exact neighbours
    copy = milvus["copy"]
    for direction in ("local_to_milvus", "milvus_to_local"):
        assert copy[direction]["checked_items"] > 0 and copy[direction]["items_per_s"] > 0
    assert "index copy local to milvus" in out
    assert set(Path(tempfile.gettempdir()).glob("reslab-bench-milvus-*")) <= before  # its temporary Milvus Lite file is removed
