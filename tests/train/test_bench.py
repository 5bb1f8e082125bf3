"""`reslab bench train` and `reslab bench recipe` at toy sizes: the tables' structure and JSON, not speed."""

from __future__ import annotations

import json

import pytest

from reslab.train import bench, race


@pytest.fixture
def no_compile_row(monkeypatch):
    # the compile row's mechanics are tested in test_speed_paths; here it would only cost compile time
    monkeypatch.setattr(bench, "ENGINE_ROWS", bench.ENGINE_ROWS[:-1])


def test_bench_train_rows_are_cumulative_and_saved(tmp_path, no_compile_row):
    result = bench.run_bench("resnet20", batch=4, steps=2, image_size=16, out=tmp_path)
    rows = result["rows"]
    assert [r["row"] for r in rows][0].startswith("textbook") and len(rows) == len(bench.ENGINE_ROWS) + 1
    for above, row in zip(rows, rows[1:]):
        assert row["vs_row_above"] == pytest.approx(row["images_per_s"] / above["images_per_s"])
        # each engine row keeps the settings of the row above and changes one
        if "settings" in above:
            assert len(set(row["settings"]) - set(above["settings"])) == 1
    assert result["speedup"] == pytest.approx(rows[-1]["images_per_s"] / rows[0]["images_per_s"])
    saved = json.loads((tmp_path / "bench_train_resnet20.json").read_text())
    assert saved["rows"] == rows and saved["provenance"]["machine"]["cpu_flags"] is not None
    assert set(saved["peaks_gflop_per_s"]) == {f"{k}_{d}" for k in ("matmul", "conv", "conv_train") for d in ("fp32", "bf16")}
    assert all(v > 0 for v in saved["peaks_gflop_per_s"].values())


def test_fastest_only_skips_the_textbook_loop(tmp_path, no_compile_row):
    result = bench.run_bench("resnet20", batch=4, steps=2, image_size=16, out=tmp_path, rows="fastest")
    assert [r["row"] for r in result["rows"]] == [bench.ENGINE_ROWS[-1][0]] and result["speedup"] is None


def test_recipe_race_table_over_seeds(tmp_path):
    root = bench.write_bench_images(tmp_path / "images", 40, 16, num_classes=4)
    (root / "test").mkdir()
    for folder in (root / "train").iterdir():  # a test split: the same few images
        (root / "test" / folder.name).mkdir()
        for f in list(folder.iterdir())[:2]:
            (root / "test" / folder.name / f.name).write_bytes(f.read_bytes())
    overrides = ["model.name=airbench94", "model.options={widths = [8, 8, 8]}", "data.image_size=16",
                 "train.batch_size=8", "train.epochs=1", "train.compile=off", "data.eval_batch_size=8"]
    result = race.run_race(["cifar_airbench"], str(root), [0, 1], overrides, out=tmp_path)
    (row,) = result["rows"]
    assert row["seeds"] == [0, 1] and len(row["top1"]) == 2 and row["epochs"] == pytest.approx(1.0)
    assert row["top1_mean"] == pytest.approx(sum(row["top1"]) / 2)
    # FLOPs: 5 steps of 8 images forward+backward, plus 6 test views and one end-of-run evaluation of 8 images
    per_image, forward = race.train_flops_per_image("airbench94", {"widths": [8, 8, 8]}, 16, 4)
    assert row["pflop"] * 1e15 == pytest.approx(per_image * 40 + forward * (6 + 1) * 8)
    assert json.loads((tmp_path / "recipe_cifar_airbench.json").read_text())["runs"][1]["seed"] == 1


def test_gpu_bench_script_runs_at_toy_size_on_the_cpu(tmp_path, no_compile_row):
    """`make gpu-bench` is for a CUDA machine; its code path runs here at toy sizes on the CPU."""
    import importlib.util

    from tests.conftest import REPO

    spec = importlib.util.spec_from_file_location("gpu_bench", REPO / "benchmarks" / "gpu_bench.py")
    gpu_bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_bench)
    assert gpu_bench.main(["--device", "cpu", "--tiny", "--out", str(tmp_path)]) == 0
    saved = json.loads((tmp_path / "gpu_bench_tiny.json").read_text())
    assert saved["resnet50_images_per_s"] > 0 and saved["resnet20_images_per_s"] > 0
    assert 0 <= saved["cifar_fast"]["top1"] <= 100 and saved["cifar_fast"]["epochs"] == pytest.approx(1.0)
