"""Perceptual hashes: known bit patterns, distances on real photos and their copies, the binary index."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from tests.cli_tools import run_cli
from reslab.embeddings.hashes import (
    HASH_METHODS, HashEmbedder, average_hash, bits_to_rows, dct_matrix, difference_hash, hamming, hash_hex,
    image_hash, perceptual_hash, rows_to_packed, wavelet_hash,
)  # fmt: skip
from reslab.search import faiss_index


def _gradient(width=64, height=48, reverse=False):
    row = np.linspace(0, 255, width)
    a = np.tile(row[::-1] if reverse else row, (height, 1)).astype(np.uint8)
    return Image.fromarray(a)


def test_difference_hash_of_gradients_is_all_ones_or_all_zeros():
    assert difference_hash(_gradient()).all()
    assert not difference_hash(_gradient(reverse=True)).any()


def test_average_hash_of_a_half_bright_image_marks_the_bright_half():
    a = np.zeros((64, 64), np.uint8)
    a[:, 32:] = 255
    bits = average_hash(Image.fromarray(a)).reshape(8, 8)
    assert not bits[:, :4].any() and bits[:, 4:].all()
    assert hash_hex(bits.ravel()) == "0f" * 8


def test_wavelet_hash_block_means_match_average_hash_on_a_block_image():
    a = np.zeros((128, 128), np.uint8)
    a[:64, :] = 200  # top half bright
    assert (wavelet_hash(Image.fromarray(a)).reshape(8, 8)[:4]).all()
    assert not wavelet_hash(Image.fromarray(a)).reshape(8, 8)[4:].any()


def test_dct_matrix_is_the_orthonormal_dct_ii():
    from scipy.fft import dct

    x = np.random.default_rng(0).random(32)
    m = dct_matrix(32)
    assert np.allclose(m @ x, dct(x, norm="ortho"))
    assert np.allclose(m @ m.T, np.eye(32))


@pytest.fixture(scope="module")
def photos():
    import skimage.data

    return {name: Image.fromarray(getattr(skimage.data, name)()).convert("RGB") for name in ("astronaut", "coffee", "chelsea", "rocket")}


def _jpeg(image, quality):
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


@pytest.mark.parametrize("method", HASH_METHODS)
def test_copies_are_close_and_other_photos_far(photos, method):
    base = photos["astronaut"]
    h = image_hash(base, method)
    copies = {
        "half size": base.resize((base.width // 2, base.height // 2), Image.BICUBIC),
        "jpeg 30": _jpeg(base, 30),
        "brighter": ImageEnhance.Brightness(base).enhance(1.2),
    }
    for what, copy in copies.items():
        assert hamming(h, image_hash(copy, method)) <= 6, what
    for other in ("coffee", "chelsea", "rocket"):
        assert hamming(h, image_hash(photos[other], method)) >= 14, other


def test_mirroring_changes_a_hash_a_lot(photos):
    # why searches of hash indexes also query the mirror: the bits are not flip-invariant
    base = photos["chelsea"]
    assert hamming(perceptual_hash(base), perceptual_hash(ImageOps.mirror(base))) >= 10


def test_hash_rows_inner_product_is_one_minus_twice_the_normalised_hamming_distance():
    rng = np.random.default_rng(0)
    bits = rng.random((20, 64)) < 0.5
    rows = bits_to_rows(bits)
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0)
    d = (bits[:, None, :] != bits[None, :, :]).sum(-1)
    assert np.allclose(rows @ rows.T, 1 - 2 * d / 64, atol=1e-6)
    assert np.array_equal(np.unpackbits(rows_to_packed(rows), axis=1).astype(bool), bits)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_binary_index_ranks_by_hamming_distance(kind):
    rng = np.random.default_rng(1)
    bits = rng.random((2000, 64)) < 0.5
    rows = bits_to_rows(bits)
    ids = np.arange(2000, dtype=np.int64) + 7
    index = faiss_index.build_faiss(ids, rows, faiss_index.FaissParams(kind=kind, nprobe=64), 64, "hamming")
    index = faiss_index.deserialize(faiss_index.serialize(index), "hamming")  # survives a round trip
    faiss_index.set_search_params(index, faiss_index.FaissParams(nprobe=64, ef_search=128))
    queries = bits.copy()[:5]
    queries[:, :3] ^= True  # 3 bits off their item
    scores, found = faiss_index.search(index, bits_to_rows(queries), 1)
    assert list(found[:, 0]) == list(ids[:5])
    assert np.allclose(scores[:, 0], 1 - 2 * 3 / 64)
    if kind != "hnsw":
        lims, sims, hits = faiss_index.range_search(index, bits_to_rows(queries), 1 - 2 * 3 / 64)
        for q in range(5):
            assert ids[q] in hits[lims[q] : lims[q + 1]]
            assert (sims[lims[q] : lims[q + 1]] >= 1 - 2 * 3 / 64 - 1e-6).all()


def test_embedder_manifest_round_trip_and_bad_options():
    from reslab.errors import ReslabError
    from reslab.embeddings import embedder_from_manifest, make_embedder

    emb = make_embedder("dhash", hash_size=16)
    assert emb.dim == 256 and emb.manifest()["metric"] == "hamming"
    again = embedder_from_manifest({**emb.manifest(), "dim": 256}, ".")
    assert again.method == "dhash" and again.hash_size == 16
    with pytest.raises(ReslabError, match="hash_size"):
        make_embedder("phash", vocab_size=3)
    with pytest.raises(ReslabError, match="even integer"):
        HashEmbedder("phash", hash_size=5)


def test_embed_search_and_duplicates_with_a_hash_index(tmp_path, photos, capsys):
    src = tmp_path / "photos"
    src.mkdir()
    for name, im in photos.items():
        im.save(src / f"{name}.jpg", quality=92)
    photos["coffee"].resize((200, 150)).save(src / "coffee_small.jpg", quality=40)
    ImageOps.mirror(photos["rocket"]).save(tmp_path / "rocket_mirrored.jpg")
    idx = tmp_path / "idx"
    code, _, err = run_cli(capsys, "embed", str(src), "--out", str(idx), "--method", "phash", "--workers", "0")
    assert code == 0, err
    manifest = json.loads((idx / "manifest.json").read_text())
    assert manifest["metric"] == "hamming" and manifest["dim"] == 64
    code, out, err = run_cli(capsys, "search", str(idx), str(tmp_path / "rocket_mirrored.jpg"), "-k", "1", "--json")
    assert code == 0, err
    hit = json.loads(out)["hits"][0]
    assert hit["path"].endswith("rocket.jpg") and hit["score"] > 0.8  # the mirror query finds it
    code, out, err = run_cli(capsys, "duplicates", str(idx), "--json")
    groups = json.loads(out)
    assert code == 0 and len(groups) == 1
    assert sorted(h["path"].rsplit("/", 1)[1] for h in groups[0]["items"]) == ["coffee.jpg", "coffee_small.jpg"]
    code, out, _ = run_cli(capsys, "duplicates", str(idx), "--max-distance", "40", "--json")
    assert len(json.loads(out)[0]["items"]) > 2  # a loose radius joins unrelated photos
    code, _, err = run_cli(capsys, "duplicates", str(idx), "--max-distance", "4", "--threshold", "0.9")
    assert code == 1 and "not both" in err


def test_duplicate_rule_counts_bits_only_for_hash_indexes():
    from reslab.errors import ReslabError
    from reslab.search.duplicates import duplicate_threshold

    t, rule = duplicate_threshold({"metric": "hamming", "dim": 256})
    assert t == pytest.approx(1 - 2 * 40 / 256) and "40 of 256 bits" in rule  # 10 per 64, scaled
    assert duplicate_threshold({"metric": "hamming", "dim": 64}, max_distance=4)[0] == pytest.approx(1 - 8 / 64)
    assert duplicate_threshold({"metric": "inner_product", "dim": 512})[0] == 0.95
    with pytest.raises(ReslabError, match="--max-distance counts bits"):
        duplicate_threshold({"metric": "inner_product", "method": "cnn", "dim": 512}, max_distance=3)


def test_near_duplicate_bench_on_the_bundled_photos():
    from reslab.search.near_duplicates import bench_near_duplicates

    r = bench_near_duplicates(None, n=4, methods=("dhash",), speed=False)
    plain, mirrored = r["methods"]["dhash"], r["methods"]["dhash+mirror"]
    assert set(plain["edits"]) == {"resize", "reencode", "crop", "flip", "brightness"}
    assert plain["edits"]["reencode"]["top1"] == 1.0
    assert mirrored["edits"]["flip"]["top1"] == 1.0  # querying the mirror too finds flipped copies
