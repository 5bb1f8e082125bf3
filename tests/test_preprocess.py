"""Evaluation preprocessing: resizing only the crop, and normalising pixels in one pass."""

import numpy as np
import pytest
from PIL import Image

from reslab.preprocess import EvalPreprocess, center_crop, normalize_pixels, resize_center_crop, resize_shorter


def _plain(img, resize, crop, interpolation):
    return np.asarray(center_crop(resize_shorter(img, resize, interpolation), crop), dtype=np.int64)


def test_a_fully_decoded_image_takes_the_plain_path_bit_for_bit(hymenoptera_root):
    for p in sorted(hymenoptera_root.rglob("*.jpg"))[::40][:6]:
        with Image.open(p) as im:
            img = im.convert("RGB")
        for picture in (img, img.transpose(Image.ROTATE_90)):  # landscape and portrait
            for resize, crop, interpolation in ((224, 224, "bicubic"), (256, 224, "bilinear")):
                got = np.asarray(resize_center_crop(picture, resize, crop, interpolation))
                np.testing.assert_array_equal(got, _plain(picture, resize, crop, interpolation))


def test_small_and_grey_images_keep_the_plain_path():
    rng = np.random.default_rng(0)
    small = Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8))  # upsampled, then cropped
    assert resize_center_crop(small, 224, 224).size == (224, 224)
    padded = resize_center_crop(small, 100, 128)  # resize < crop: the plain path's padding
    np.testing.assert_array_equal(np.asarray(padded), _plain(small, 100, 128, "bilinear"))
    grey = Image.fromarray(rng.integers(0, 256, (300, 400), dtype=np.uint8), "L")
    assert np.asarray(resize_center_crop(grey, 256, 224)).shape == (224, 224)


def test_eval_preprocess_uses_the_same_framing():
    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (375, 500, 3), dtype=np.uint8))
    pre = EvalPreprocess(crop=224, resize=256)
    x = pre(img).numpy()
    expected = normalize_pixels(np.asarray(resize_center_crop(img, 256, 224))[None], pre.mean, pre.std)[0]
    np.testing.assert_allclose(x, expected, atol=1e-5)


@pytest.mark.parametrize("channels", [1, 3])
def test_normalize_pixels_equals_the_textbook_expression(channels):
    pixels = np.random.default_rng(2).integers(0, 256, (4, 9, 7, channels), dtype=np.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    out = normalize_pixels(pixels, mean, std)
    m = np.asarray(mean[:channels]).reshape(1, -1, 1, 1)
    s = np.asarray(std[:channels]).reshape(1, -1, 1, 1)
    expected = (pixels.transpose(0, 3, 1, 2) / 255.0 - m) / s
    assert out.dtype == np.float32 and out.shape == (4, channels, 9, 7) and out.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(out, expected, atol=2e-6)
