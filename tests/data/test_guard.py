import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from reslab.cli import main
from reslab.data import DataConfig, build_data
from reslab.data.guard import BadFileLog, TooManyBadFiles, decode_or_replace
from reslab.data.verify import verify_data
from reslab.imageio import BadImageError


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    return e.value.code, capsys.readouterr()


def test_verify_data_lists_every_bad_file_and_exits_1(bad_zoo, capsys):
    root, files = bad_zoo
    code, out = run_cli(["data", "verify", str(root), "--json", "--workers", "0"], capsys)
    assert code == 1
    report = json.loads(out.out)
    assert sorted(b["path"] for b in report["bad"]) == files["bad"]  # awkward formats decode: not listed
    assert all(b["reason"] for b in report["bad"])
    assert report["counts"]["train"] == {"ants": 23, "bees": 23}
    # the human-readable form names each bad file too
    code, out = run_cli(["data", "verify", str(root), "--workers", "2"], capsys)
    assert code == 1 and all(p in out.out.replace("\n", "") for p in files["bad"])


def test_verify_data_exit_0_when_clean(tmp_path, capsys):
    from tests.data.conftest import write_folder

    root = write_folder(tmp_path / "ok", per_class=(3, 3), splits=("train", "val"))
    code, out = run_cli(["data", "verify", str(root)], capsys)
    assert code == 0 and "all 12 images decode" in out.out


def test_awkward_formats_decode_to_the_right_pixels(bad_zoo):
    root, files = bad_zoo
    report = verify_data(root, workers=0, progress=False)
    assert not set(files["awkward"]) & {b["path"] for b in report.bad}
    from reslab.imageio import load_image

    assert load_image(root / "train/bees/cmyk.jpg").getpixel((10, 10)) == pytest.approx((255, 0, 0), abs=3)
    assert load_image(root / "train/bees/palette.png").getpixel((10, 10)) == (10, 200, 30)
    # 16-bit grey scaled to 8 bits, not clipped to white: value v -> v * 255 / 65535
    v = (10 * 48 + 10) * 30
    assert load_image(root / "train/ants/grey16.png", "L").getpixel((10, 10)) == pytest.approx(v * 255 / 65535, abs=1)


@pytest.mark.parametrize("in_memory", ["no", "yes"])
def test_bad_files_are_reported_replaced_and_counted(bad_zoo, caplog, in_memory):
    root, files = bad_zoo
    cfg = DataConfig(path=str(root), image_size=32, augment="cifar_paper", max_bad_fraction=0.1, in_memory=in_memory, workers=0)
    with caplog.at_level(logging.WARNING):
        data = build_data(cfg, batch_size=8, seed=0)
        epoch = list(data.train.batches(0)) + list(data.train.batches(1))
    warned = {r.args[0] for r in caplog.records if r.name == "reslab.data.guard"}
    assert warned == set(files["bad"])
    assert all(torch.isfinite(x).all() and x.shape == (8, 3, 32, 32) for x, _ in epoch)
    # the same seed gives the same batches, replacements included
    data2 = build_data(cfg, batch_size=8, seed=0)
    again = list(data2.train.batches(0))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(epoch, again))


@pytest.mark.parametrize("in_memory", ["no", "yes"])
def test_too_many_bad_files_abort_with_a_clear_error(bad_zoo, in_memory):
    root, _ = bad_zoo
    cfg = DataConfig(path=str(root), max_bad_fraction=0.05, in_memory=in_memory, workers=0)  # 3 of 46 > 5%
    with pytest.raises(TooManyBadFiles, match="reslab data verify"):
        data = build_data(cfg, batch_size=46, seed=0)
        list(data.train.batches(0))


@pytest.mark.parametrize("in_memory", ["no", "yes"])
def test_the_abort_counts_every_bad_file_before_it_decides(bad_zoo, in_memory):
    # issue 12, defect 7: the first bad file past the threshold aborted with "1 of 66" when 4 were bad
    root, files = bad_zoo
    cfg = DataConfig(path=str(root), max_bad_fraction=0.01, in_memory=in_memory, workers=0)  # one bad is too many
    with pytest.raises(TooManyBadFiles) as aborted:
        data = build_data(cfg, batch_size=46, seed=0)
        list(data.train.batches(0))
    message = str(aborted.value)
    assert f"{len(files['bad'])} of 46 images" in message
    assert all(Path(p).name in message for p in files["bad"])


def test_bad_file_log_threshold_is_exclusive():
    log = BadFileLog(total=100, max_fraction=0.02)
    log.record("a", "x")
    log.record("b", "x")
    log.record("b", "x")  # the same file twice counts once
    with pytest.raises(TooManyBadFiles, match="3 of 100"):
        log.record("c", "x")


def test_decode_or_replace_takes_the_next_good_sample():
    bad = {1, 2}

    def decode(j):
        if j in bad:
            raise BadImageError(f"f{j}", "broken")
        return j * 10

    assert decode_or_replace(1, 5, decode) == (30, 3, [("f1", "broken"), ("f2", "broken")])
    assert decode_or_replace(0, 5, decode)[0:2] == (0, 0)
    with pytest.raises(TooManyBadFiles):
        decode_or_replace(0, 2, lambda j: decode(j + 1))


def test_decode_cache_makes_the_second_build_identical(tmp_path, monkeypatch):
    from tests.data.conftest import write_folder

    root = write_folder(tmp_path / "f", per_class=(8, 8), splits=("train",))
    cfg = DataConfig(path=str(root), in_memory="yes", workers=0)
    first = build_data(cfg, 4, seed=0).train.images.clone()
    cached = list((tmp_path / "cache" / "decoded").glob("*.npz"))
    assert len(cached) == 1
    monkeypatch.setattr("reslab.data.memory.decode_files", lambda *a, **k: pytest.fail("decoded again"))
    second = build_data(cfg, 4, seed=0).train.images
    assert torch.equal(first, second)
    assert np.asarray(first).dtype == np.uint8


def test_an_abort_inside_a_worker_process_reaches_the_user_as_one_sentence(tmp_path):
    for cls in ("a", "b"):
        (tmp_path / "train" / cls).mkdir(parents=True)
        for i in range(40):
            (tmp_path / "train" / cls / f"{i}.jpg").write_text("not an image")
    cfg = DataConfig(path=str(tmp_path), augment="rrc", image_size=16, in_memory="no", workers=2, max_bad_fraction=1.0)
    with pytest.raises(TooManyBadFiles) as e:
        next(build_data(cfg, 4, seed=0).train.batches(0))
    assert "Traceback" not in str(e.value) and "\n" not in str(e.value) and "reslab data verify" in str(e.value)
