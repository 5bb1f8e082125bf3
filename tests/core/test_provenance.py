"""Where numbers come from, and where benchmark results go."""

from __future__ import annotations

import json

from reslab import __version__
from reslab.provenance import BENCH_RESULTS_ENV, bench_results_dir, code_version, machine, record, save_benchmark


def test_one_setting_for_benchmark_results(tmp_path, monkeypatch):
    monkeypatch.delenv(BENCH_RESULTS_ENV, raising=False)
    assert str(bench_results_dir()) == "benchmarks/results"
    monkeypatch.setenv(BENCH_RESULTS_ENV, str(tmp_path / "elsewhere"))
    path = save_benchmark("bench_x", {"command": "reslab bench x", "ratio": 2.5})
    assert path == tmp_path / "elsewhere" / "bench_x.json"
    saved = json.loads(path.read_text())
    assert saved["ratio"] == 2.5 and saved["provenance"]["command"] == "reslab bench x"
    assert save_benchmark("bench_y", {"ratio": 1}, out_dir=tmp_path) == tmp_path / "bench_y.json"


def test_records_name_the_code_and_the_machine():
    version = code_version()
    assert version["reslab"] == __version__ and (version["git_commit"] is None or len(version["git_commit"]) >= 40)
    info = machine()
    assert info["cores"] >= 1 and info["torch_threads"] >= 1 and isinstance(info["cpu_flags"], list)
    rec = record("reslab bench z")
    assert rec["command"] == "reslab bench z" and rec["machine"]["torch"] == info["torch"] and rec["time"]
