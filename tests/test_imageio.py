"""Decoding: EXIF orientation, reduced-scale JPEG decodes and their framing, on real photos."""

import numpy as np
import pytest
from PIL import Image

from reslab.imageio import DRAFT_INFO, DRAFT_MARGIN, draft_scale, full_size, load_image, upright_size
from reslab.preprocess import center_crop, resize_center_crop, resize_shorter


@pytest.fixture(scope="module")
def photo(hymenoptera_root):
    """A real ants/bees photo (landscape, ~500x375)."""
    path = sorted((hymenoptera_root / "train" / "ants").glob("*.jpg"))[0]
    return Image.open(path).convert("RGB")


@pytest.fixture(scope="module")
def big_jpegs(photo, hymenoptera_root, tmp_path_factory):
    """What users bring: 3000x2000 JPEGs. A mosaic of 36 real photos at their own resolution (real
    fine detail everywhere), and one photo scaled up (smooth); both re-encoded at quality 90."""
    folder = tmp_path_factory.mktemp("big")
    photos = sorted(hymenoptera_root.rglob("*.jpg"))[::7][:36]
    mosaic = Image.new("RGB", (3000, 2000))
    for i, p in enumerate(photos):
        with Image.open(p) as im:
            mosaic.paste(im.convert("RGB").resize((500, 333)), ((i % 6) * 500, (i // 6) * 333))
    mosaic.save(folder / "mosaic.jpg", quality=90)
    photo.resize((3000, 2000), Image.LANCZOS).save(folder / "scaled.jpg", quality=90)
    return [folder / "mosaic.jpg", folder / "scaled.jpg"]


def _with_orientation(image: Image.Image, path, orientation: int):
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, quality=95, exif=exif.tobytes())
    return path


@pytest.mark.parametrize("orientation,turn", [(3, Image.ROTATE_180), (6, Image.ROTATE_270), (8, Image.ROTATE_90), (2, Image.FLIP_LEFT_RIGHT)])
def test_exif_orientation_turns_the_picture_upright(photo, tmp_path, orientation, turn):
    plain = load_image(_with_orientation(photo, tmp_path / "plain.jpg", 1))
    path = _with_orientation(photo, tmp_path / "turned.jpg", orientation)
    upright = load_image(path)
    np.testing.assert_array_equal(np.asarray(upright), np.asarray(plain.transpose(turn)))
    with Image.open(path) as im:
        assert upright_size(im) == upright.size  # from the header, before decoding


def test_a_damaged_exif_block_is_ignored_not_fatal(photo, tmp_path):
    path = tmp_path / "bad-exif.jpg"
    photo.save(path, quality=95, exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff")  # an entry count running past the block
    assert load_image(path).size == photo.size


def test_reduced_decode_keeps_the_margin_and_records_the_full_size(big_jpegs):
    for min_size in (224, 256, 300):
        img = load_image(big_jpegs[0], min_size=min_size)
        scale = draft_scale(img)
        assert scale in (2, 4, 8) and min(img.size) >= DRAFT_MARGIN * min_size
        assert min(img.size) // 2 < DRAFT_MARGIN * min_size or scale == 8  # and is as small as that allows
        assert full_size(img) == (3000, 2000) and img.size == (3000 // scale, 2000 // scale)
    small = load_image(big_jpegs[0], min_size=1000)  # 2000 / 2 = 1000 < 3 x 1000: the full decode
    assert draft_scale(small) == 1 and DRAFT_INFO not in small.info and small.size == (3000, 2000)


def test_reduced_decode_of_a_turned_photo_is_upright_with_the_full_size_turned(big_jpegs, tmp_path):
    with Image.open(big_jpegs[1]) as im:
        path = _with_orientation(im.convert("RGB"), tmp_path / "turned.jpg", 6)
    img = load_image(path, min_size=224)
    assert draft_scale(img) == 2 and img.size == (1000, 1500) and full_size(img) == (2000, 3000)
    reference = load_image(path)  # the full decode, also upright
    assert reference.size == (2000, 3000)
    a = np.asarray(resize_center_crop(img, 224, 224, "bicubic"), dtype=np.float64)
    b = np.asarray(resize_center_crop(reference, 224, 224, "bicubic"), dtype=np.float64)
    assert np.abs(a - b).mean() < 1.0  # the same framing: a one-pixel shift would differ by ~10 grey levels here


# The stated tolerance of a reduced decode (docs/inference.md, "Decoding"): EfficientNet-Lite0, the most
# sensitive network here, measured min 0.99867 / mean 0.99956 over 24 camera-size photos.
REDUCED_DECODE_MIN_COSINE = 0.9985


def test_reduced_decode_embeds_within_its_tolerance_of_the_full_decode(big_jpegs):
    from reslab.embeddings import CnnEmbedder

    emb = CnnEmbedder(model="efficientnet_lite0", weights="imagenet", device="cpu")
    reduced = [emb.preprocess(load_image(p, min_size=emb.min_size)) for p in big_jpegs]
    full = [emb.preprocess(load_image(p)) for p in big_jpegs]
    assert all(draft_scale(load_image(p, min_size=emb.min_size)) > 1 for p in big_jpegs)
    cosine = (emb.embed(reduced) * emb.embed(full)).sum(axis=1)
    assert cosine.min() >= REDUCED_DECODE_MIN_COSINE, cosine
