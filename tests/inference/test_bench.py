"""`reslab bench infer`: the table's structure and its JSON (no timed assertions: speed lives in benchmarks/)."""

from __future__ import annotations

import json

from .conftest import run_cli


def test_bench_infer_writes_every_runtime_with_its_parity_and_the_peak(tmp_path, capsys, resnet20_file):
    assert run_cli(["bench", "infer", "resnet20", "--weights", str(resnet20_file), "--batch-size", "2", "--rounds", "1",
                    "--no-compile", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    result = json.loads((tmp_path / "bench_infer_resnet20_b2.json").read_text())
    rows = result["rows"]
    assert rows["torch fp32"]["vs_torch_fp32"] == 1.0 and rows["torch fp32"]["cosine_vs_fp32"] > 0.99999
    for name, row in rows.items():
        assert row["images_per_s"] > 0 and 0.99 < row["cosine_vs_fp32"] <= 1.0 + 1e-9, name
        assert row["gflops_per_s"] == row["images_per_s"] * result["model_gflops_per_image"]
    assert not any(r["runtime"] == "torch-compile" for r in rows.values())  # --no-compile
    assert set(result["matmul_peak_gflops"]) == {"fp32", "bf16"} and min(result["matmul_peak_gflops"].values()) > 0
    assert 0.08 < result["model_gflops_per_image"] < 0.09  # ResNet-20 at 32x32: 41M multiply-adds
    default = result["default_path"]
    assert default["choice"] in rows and default["auto_line"].startswith("runtime auto:")
    assert default["over_fastest"] == rows[default["choice"]]["images_per_s"] / max(r["images_per_s"] for r in rows.values())
    machine = result["provenance"]["machine"]  # reslab.provenance: the CPU flags and the load beside the numbers
    assert "cpu_flags" in machine and "load_average" in machine and result["versions"]["torch"]
    assert result["command"].startswith("reslab bench infer resnet20 --batch-size 2")
    assert "default path (--runtime auto)" in out and "matmul peak (same run)" in out
