import json

import numpy as np
import pytest
from tests.data.conftest import write_folder

from reslab.data import bench


def test_bench_data_writes_consistent_json(tmp_path, monkeypatch):
    # tiny photos and a stand-in for the ResNet-18 step: this checks the plumbing, not speed
    root = write_folder(tmp_path / "photos", per_class=(20, 20), size=(300, 260), splits=("train",))
    monkeypatch.setattr(bench, "resnet18_train_rate", lambda seconds, threads: 10.0)
    monkeypatch.setattr(bench, "_timed", lambda step, seconds, **k: step() / 0.01)  # one call each
    small = np.random.default_rng(0).integers(0, 256, (512, 3, 32, 32), dtype=np.uint8)
    monkeypatch.setattr(bench, "_cifar_images", lambda cifar: (small, "512 random images"))
    result = bench.run_bench_data(root, None, workers=0, seconds=0.05, out=tmp_path)
    saved = json.loads((tmp_path / "bench_data.json").read_text())
    provenance = saved.pop("provenance")
    assert saved["command"].startswith("reslab bench data --data") and saved == json.loads(json.dumps(result))
    assert provenance["command"] == saved["command"] and provenance["machine"]["cores"] >= 1
    for aug in ("imagenet_paper", "rrc"):
        assert saved["loader_over_model"][aug] == pytest.approx(saved["loader_images_per_s"][aug] / 10.0)
    assert saved["cifar_batched_over_per_image"] == pytest.approx(
        saved["cifar_batched_images_per_s"] / saved["cifar_per_image_images_per_s"]
    )


def test_without_data_the_bench_cuts_the_bundled_photos_once(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("RESLAB_CACHE", str(tmp_path))
    folder = bench.bench_photo_folder()
    assert folder == tmp_path / "datasets" / "bench-photos"
    photos = sorted(folder.glob("train/*/*.jpg"))
    classes = {p.parent.name for p in photos}
    assert len(classes) >= 9 and len(photos) == len(classes) * bench.PHOTO_VARIANTS
    for path in photos[:: bench.PHOTO_VARIANTS // 2]:
        with Image.open(path) as im:
            assert min(im.size) == 375 and max(im.size) <= 500  # ImageNet-sized: the scale augmentation's 256-480 applies
    first = photos[0].read_bytes()
    assert bench.bench_photo_folder() == folder and photos[0].read_bytes() == first  # written once, kept
    assert not list((tmp_path / "datasets").glob(".bench-photos-*"))  # no half-built folder left behind
