"""HOG, colour-histogram and bag-of-visual-words embedders: shapes, norms, invariances, persistence."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps
from skimage import data

from reslab.errors import ReslabError
from reslab.embeddings.classical import BoVWEmbedder, ColorHistEmbedder, HogEmbedder, make_classical_embedder


def _rgb(name: str) -> Image.Image:
    return Image.fromarray(getattr(data, name)()).convert("RGB")


def _recompressed(image: Image.Image, quality: int = 40, scale: float = 0.8) -> Image.Image:
    small = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _vectors(embedder, images):
    return embedder.embed([embedder.preprocess(im) for im in images])


def _assert_unit_rows(v: np.ndarray, dim: int):
    assert v.dtype == np.float32 and v.shape[1] == dim
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_hog_dimension_norm_and_robustness():
    emb = HogEmbedder(size=128, cell=16)
    assert emb.dim == 7 * 7 * 2 * 2 * 9  # (cells-1)^2 blocks of 2x2 cells, 9 orientations
    astro, coffee = _rgb("astronaut"), _rgb("coffee")
    v = _vectors(emb, [astro, astro, _recompressed(astro), coffee])
    _assert_unit_rows(v, emb.dim)
    assert v[0] @ v[1] == pytest.approx(1.0, abs=1e-6)
    assert v[0] @ v[2] > v[0] @ v[3] + 0.1


def test_hist_matches_a_slow_numpy_histogram():
    import cv2

    emb = ColorHistEmbedder(space="hsv", bins=(8, 4, 4))
    rgb = emb.preprocess(_rgb("chelsea"))
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).reshape(-1, 3).astype(np.int64)
    # the oracle: bin index of each pixel by integer arithmetic, counted by hand
    h, s, v = hsv[:, 0] * 8 // 180, hsv[:, 1] * 4 // 256, hsv[:, 2] * 4 // 256
    counts = np.bincount((h * 4 + s) * 4 + v, minlength=128).astype(np.float64)
    expected = np.sqrt(counts / counts.sum())
    np.testing.assert_allclose(emb.embed([rgb])[0], expected / np.linalg.norm(expected), atol=1e-5)


def test_hist_is_flip_invariant_and_separates_unrelated_images():
    emb = ColorHistEmbedder()
    astro, coffee = _rgb("astronaut"), _rgb("coffee")
    v = _vectors(emb, [astro, ImageOps.mirror(astro), _recompressed(astro), coffee])
    _assert_unit_rows(v, emb.dim)
    assert v[0] @ v[1] == pytest.approx(1.0, abs=1e-5)  # a flip moves pixels, not colours
    assert v[0] @ v[2] > 0.95 > v[0] @ v[3]


@pytest.fixture(scope="module")
def sample_images() -> list[Image.Image]:
    names = ["astronaut", "coffee", "chelsea", "rocket", "camera", "brick", "grass", "gravel", "immunohistochemistry", "hubble_deep_field"]
    return [_rgb(n) for n in names]


@pytest.mark.parametrize("detector", ["sift", "orb"])
def test_bovw_fit_embed_and_round_trip(detector, sample_images, tmp_path):
    emb = BoVWEmbedder(detector=detector, vocab_size=64, max_keypoints=300)
    assert emb.needs_fit and emb.dim == 64
    emb.fit(iter(sample_images))
    assert emb.vocabulary.shape == (64, 128 if detector == "sift" else 256)
    astro, coffee = sample_images[0], sample_images[1]
    v = _vectors(emb, [astro, astro, _recompressed(astro, scale=0.9), coffee])
    _assert_unit_rows(v, 64)
    assert v[0] @ v[1] == pytest.approx(1.0, abs=1e-5)
    assert v[0] @ v[2] > v[0] @ v[3]

    # the manifest names the vocabulary files; rebuilding from it gives the same vectors
    emb.save(tmp_path)
    manifest = emb.manifest()
    assert (tmp_path / manifest["vocabulary"]).is_file() and (tmp_path / manifest["idf"]).is_file()
    rebuilt = BoVWEmbedder.from_manifest(manifest, tmp_path)
    np.testing.assert_allclose(_vectors(rebuilt, [astro, coffee]), v[[0, 3]], atol=1e-6)


def test_bovw_idf_follows_document_frequency(sample_images):
    emb = BoVWEmbedder(detector="orb", vocab_size=32, max_keypoints=200)
    emb.fit(sample_images)
    n = len(sample_images)
    df = np.zeros(32)
    for im in sample_images:
        df[np.unique(emb.assign(emb.descriptors(emb.preprocess(im))))] += 1
    np.testing.assert_allclose(emb.idf, np.log((1 + n) / (1 + df)) + 1, atol=1e-6)


def test_words_common_to_every_image_still_count(sample_images):
    # 4 words over 3 busy photos: every word occurs in every image (df = N); a plain log(N/df)
    # idf would make every vector zero
    emb = BoVWEmbedder(detector="orb", vocab_size=4, max_keypoints=300)
    emb.fit(sample_images[:3])
    np.testing.assert_allclose(emb.idf, np.log(4 / 4) + 1, atol=1e-6)
    _assert_unit_rows(_vectors(emb, sample_images[:3]), 4)


def test_bovw_user_errors(tmp_path):
    emb = BoVWEmbedder(detector="sift", vocab_size=512)
    with pytest.raises(ReslabError, match="no vocabulary"):
        emb.embed([emb.preprocess(_rgb("coffee"))])
    with pytest.raises(ReslabError, match="fewer than the 512 visual words"):
        emb.fit([Image.new("RGB", (64, 64), (90, 90, 90))])  # a flat image has no keypoints
    with pytest.raises(ReslabError, match="lacks its vocabulary"):
        BoVWEmbedder.from_manifest(emb.manifest(), tmp_path)
    with pytest.raises(ReslabError, match="has no option"):
        make_classical_embedder("hog", bins=3)


def test_featureless_image_gives_a_zero_row():
    emb = BoVWEmbedder(detector="orb", vocab_size=8)
    emb.vocabulary, emb.idf = np.random.default_rng(0).random((8, 256), dtype=np.float32), np.ones(8, np.float32)
    row = emb.embed([emb.preprocess(Image.new("RGB", (100, 100)))])
    assert row.shape == (1, 8) and not row.any()


@pytest.mark.parametrize("method", ["hog", "hist", "sift", "orb"])
def test_search_make_embedder_returns_the_classical_embedders(method, tmp_path):
    from reslab.embeddings import embedder_from_manifest, make_embedder

    emb = make_embedder(method)
    assert emb.method == method
    assert emb.needs_fit == (method in ("sift", "orb"))
    if emb.needs_fit:
        emb.vocab_size = emb.dim = 16
        emb.fit([_rgb("astronaut"), _rgb("coffee"), _rgb("chelsea")])
        emb.save(tmp_path)
    again = embedder_from_manifest(emb.manifest(), tmp_path)
    im = _rgb("rocket")
    np.testing.assert_allclose(_vectors(again, [im]), _vectors(emb, [im]), atol=1e-6)


@pytest.mark.timeout(180)
def test_a_bag_of_words_index_builds_with_decode_workers(sample_images, tmp_path):
    """`reslab embed --method orb` end to end with a forked decode worker.

    Regression: fitting the vocabulary runs OpenMP code (faiss k-means) in the parent; a forked
    worker that then called cv2.setNumThreads deadlocked for ever.
    """
    from reslab.search.embed import EmbedOptions, build_index
    from reslab.embeddings import make_embedder
    from reslab.search.index import SearchIndex

    for i, im in enumerate(sample_images):
        folder = tmp_path / "photos" / f"class{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        im.save(folder / f"{i}.jpg", quality=90)
    options = EmbedOptions(workers=1, progress=False, fit_samples=len(sample_images))
    report = build_index(tmp_path / "photos", tmp_path / "index", make_embedder("orb", vocab_size=32), options)
    assert report.count == len(sample_images)
    with SearchIndex.open(tmp_path / "index") as index:
        hits = index.search_image(_recompressed(sample_images[0], scale=0.9), k=1)
        assert index.item(hits[0].id).path.endswith("/0.jpg")
