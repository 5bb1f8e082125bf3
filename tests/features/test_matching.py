"""Keypoint matching: RANSAC recovers a known homography; the ratio test agrees with brute force."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from reslab.features.compare import compare_images
from reslab.features.matching import detect_and_describe, draw_matches, match_images, ratio_test

# a mild perspective warp: rotation, shear, translation and a little projective tilt
TRUE_H = np.array([[0.9, 0.1, 20.0], [-0.08, 0.95, 30.0], [1e-4, -5e-5, 1.0]])
TEST_POINTS = np.array([[100, 100], [300, 200], [250, 400], [400, 80], [60, 450]], np.float64)


def _apply(H: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.c_[pts, np.ones(len(pts))] @ H.T
    return p[:, :2] / p[:, 2:]


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(data.astronaut())


@pytest.fixture(scope="module")
def warped(astronaut) -> Image.Image:
    return Image.fromarray(cv2.warpPerspective(np.asarray(astronaut), TRUE_H, (512, 512)))


@pytest.mark.parametrize("detector", ["sift", "orb"])
def test_ransac_recovers_a_known_homography(detector, astronaut, warped):
    result = match_images(astronaut, warped, detector=detector)
    assert result.homography is not None
    error = np.linalg.norm(_apply(result.homography, TEST_POINTS) - _apply(TRUE_H, TEST_POINTS), axis=1)
    assert error.max() < 3.0, error
    assert result.num_inliers > 200
    assert result.score > 0.3
    # every inlier pair agrees with the true mapping too
    a = result.points_a[result.matches[result.inliers, 0]]
    b = result.points_b[result.matches[result.inliers, 1]]
    assert np.median(np.linalg.norm(_apply(TRUE_H, a) - b, axis=1)) < 1.5


@pytest.mark.parametrize("detector", ["sift", "orb"])
def test_unrelated_images_score_near_zero(detector, astronaut):
    result = match_images(astronaut, Image.fromarray(data.coffee()), detector=detector)
    assert result.score < 0.03


def test_big_images_are_matched_at_a_smaller_size_and_mapped_back(astronaut, warped):
    # 2x upscale of A: matched at max_side=1024/2 scale, so H must absorb the scale change
    big = astronaut.resize((1024, 1024), Image.BICUBIC)
    result = match_images(big, warped, detector="sift", max_side=512)
    expected = TRUE_H @ np.diag([0.5, 0.5, 1.0])  # big pixel -> astronaut pixel -> warped pixel
    pts = TEST_POINTS * 2
    error = np.linalg.norm(_apply(result.homography, pts) - _apply(expected, pts), axis=1)
    assert error.max() < 4.0, error


def test_ratio_test_agrees_with_brute_force(astronaut, warped):
    _, da = detect_and_describe(np.asarray(astronaut.convert("L")), "sift", 300)
    _, db = detect_and_describe(np.asarray(warped.convert("L")), "sift", 300)
    got = {tuple(p) for p in ratio_test(da, db, "sift", 0.75)}
    d = np.linalg.norm(da[:, None, :].astype(np.float64) - db[None, :, :], axis=2)
    two = np.sort(d, axis=1)[:, :2]
    nearest = d.argmin(axis=1)
    keep = two[:, 0] < 0.75 * two[:, 1]
    # ties within float noise of the threshold may go either way
    borderline = np.abs(two[:, 0] - 0.75 * two[:, 1]) < 1e-3 * two[:, 1]
    expected = {(i, int(nearest[i])) for i in np.flatnonzero(keep & ~borderline)}
    assert expected <= got and len(got - expected) <= int(borderline.sum())
    assert len(got) > 50


def test_match_drawing_is_a_real_picture(astronaut, warped, tmp_path):
    result = match_images(astronaut, warped, detector="orb")
    picture = draw_matches(astronaut, warped, result, max_lines=40)
    assert picture.size == (1024, 512)
    a = np.asarray(picture).astype(int)
    green = (a[..., 1] > 200) & (a[..., 0] < 40) & (a[..., 2] < 40)
    assert green.sum() > 500  # the drawn lines
    assert a.std() > 30  # the photos themselves


@pytest.mark.parametrize("method", ["hog", "hist", "sift", pytest.param("cnn", marks=pytest.mark.slow)])
def test_compare_ranks_a_warped_copy_above_an_unrelated_image(method, astronaut, warped):
    from reslab.features.compare import embedder_for

    embedder = None if method == "sift" else embedder_for(method)  # built once, reused for the three pairs
    coffee = Image.fromarray(data.coffee())
    same = compare_images(astronaut, warped, method=method, embedder=embedder).score
    other = compare_images(astronaut, coffee, method=method, embedder=embedder).score
    assert 0 <= other < same <= 1.0 + 1e-6
    itself = compare_images(astronaut, astronaut, method=method, embedder=embedder).score
    assert itself == pytest.approx(1.0, abs=1e-5) if method != "sift" else itself > 0.9


def _cli(argv, capsys):
    from reslab.cli import main

    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_compare_json_and_match_png(tmp_path, capsys, astronaut, warped):
    a, b = tmp_path / "a.png", tmp_path / "b.jpg"
    astronaut.save(a)
    warped.save(b, quality=90)
    code, out, _ = _cli(["compare-images", str(a), str(b), "--method", "sift", "--json", "--out", str(tmp_path / "m.png")], capsys)
    assert code == 0
    result = json.loads(out)
    assert result["method"] == "sift" and result["inliers"] > 100 and 0 < result["score"] <= 1
    assert result["score"] == pytest.approx(result["inliers"] / min(result["keypoints_a"], result["keypoints_b"]), abs=1e-5)
    with Image.open(tmp_path / "m.png") as im:
        assert im.format == "PNG" and im.size == (1024, 512)

    code, _, err = _cli(["compare-images", str(a), str(tmp_path / "missing.jpg")], capsys)
    assert code == 1 and "missing.jpg" in err and "Traceback" not in err
    code, _, err = _cli(["compare-images", str(a), str(b), "--method", "hog", "--out", str(tmp_path / "x.png")], capsys)
    assert code == 1 and "--out" in err and not (tmp_path / "x.png").exists()
