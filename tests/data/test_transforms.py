import numpy as np
import pytest
import torch
from PIL import Image

from reslab.data.config import DataConfig
from reslab.data.transforms import (
    IMAGENET_PCA_EIGVAL,
    IMAGENET_PCA_EIGVEC,
    FileEvalTransform,
    FileTrainTransform,
    color_jitter,
    pca_lighting,
    random_resized_crop,
    random_resized_crop_box,
    scale_augment,
    ten_crop,
)


def photo(w=500, h=375, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_scale_augment_shorter_side_is_drawn_over_the_whole_range(monkeypatch):
    import reslab.data.transforms as T

    sides = []
    real = T.resize_shorter
    monkeypatch.setattr(T, "resize_shorter", lambda img, s, *a: sides.append(s) or real(img, s, *a))
    img = photo(120, 90)  # small on purpose: the range is what matters, not the cost
    for seed in range(300):
        out = scale_augment(img, np.random.default_rng(seed))
        assert out.size == (224, 224)
    assert min(sides) >= 256 and max(sides) <= 480
    assert min(sides) < 270 and max(sides) > 465  # uniform over [256, 480]


def test_scale_augment_is_deterministic_per_seed():
    img = photo(200, 150)
    a = np.asarray(scale_augment(img, np.random.default_rng(5)))
    b = np.asarray(scale_augment(img, np.random.default_rng(5)))
    c = np.asarray(scale_augment(img, np.random.default_rng(6)))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_random_resized_crop_box_respects_scale_and_ratio():
    areas, ratios = [], []
    for seed in range(400):
        left, top, w, h = random_resized_crop_box(500, 375, np.random.default_rng(seed))
        assert 0 <= left and left + w <= 500 and 0 <= top and top + h <= 375
        areas.append(w * h / (500 * 375))
        ratios.append(w / h)
    assert min(areas) >= 0.08 - 0.01 and max(areas) <= 1.0
    assert min(ratios) >= 3 / 4 - 0.02 and max(ratios) <= 4 / 3 + 0.02
    assert random_resized_crop(photo(), np.random.default_rng(0), 224).size == (224, 224)


def test_pca_lighting_matches_a_hand_computation():
    x = torch.full((3, 2, 2), 0.5)
    alpha = torch.tensor([0.1, -0.2, 0.05])
    out = pca_lighting(x, alpha)
    ev, V = IMAGENET_PCA_EIGVAL.tolist(), IMAGENET_PCA_EIGVEC.tolist()
    for c in range(3):
        shift = sum(V[c][j] * alpha[j].item() * ev[j] for j in range(3))
        assert out[c, 0, 0].item() == pytest.approx(0.5 + shift, abs=1e-6)
    # batched: one alpha row per image
    xb = torch.zeros(2, 3, 1, 1)
    outb = pca_lighting(xb, torch.stack([alpha, torch.zeros(3)]))
    assert torch.allclose(outb[0, :, 0, 0], out[:, 0, 0] - 0.5, atol=1e-6) and outb[1].abs().max() == 0


def test_color_jitter_identity_and_brightness():
    x = torch.rand(3, 8, 8)
    assert torch.allclose(color_jitter(x.clone(), 1.0, 1.0, 1.0), x, atol=1e-6)
    assert torch.allclose(color_jitter(x.clone() * 0.5, 1.5, 1.0, 1.0), x * 0.75, atol=1e-6)
    # saturation 0 gives grey: all channels equal
    g = color_jitter(x.clone(), 1.0, 1.0, 0.0)
    assert torch.allclose(g[0], g[1], atol=1e-6) and torch.allclose(g[1], g[2], atol=1e-6)


def test_ten_crop_order_as_torchvision():
    img = photo(40, 30)
    crops = ten_crop(img, 20)
    a = np.asarray(img)
    assert len(crops) == 10
    assert np.array_equal(np.asarray(crops[0]), a[:20, :20]) and np.array_equal(np.asarray(crops[3]), a[10:, 20:])
    assert np.array_equal(np.asarray(crops[5]), a[:20, ::-1][:, :20])  # top-left of the mirror image


@pytest.mark.parametrize("augment", ["imagenet_paper", "rrc", "cifar_paper", "none"])
def test_file_train_transform_shapes_and_determinism(tmp_path, augment):
    path = tmp_path / "p.jpg"
    photo(600, 450).save(path, quality=90)
    size = 32 if augment == "cifar_paper" else 224
    cfg = DataConfig(augment=augment, image_size=size, eval_resize=0 if size == 32 else 256, color_jitter=0.4, pca_lighting=0.1)
    t = FileTrainTransform(cfg, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    a, b = t(path, np.random.default_rng(1)), t(path, np.random.default_rng(1))
    assert a.shape == (3, size, size) and a.dtype == torch.float32 and torch.equal(a, b)
    if augment != "none":
        assert not torch.equal(a, t(path, np.random.default_rng(2)))


def test_eval_transform_views(tmp_path):
    path = tmp_path / "p.jpg"
    photo(600, 450).save(path)
    cfg = DataConfig(image_size=224, eval_resize=256, augment="none")
    one = FileEvalTransform(cfg, (0.0,) * 3, (1.0,) * 3)(path)
    flips = FileEvalTransform(cfg, (0.0,) * 3, (1.0,) * 3, "flip")(path)
    ten = FileEvalTransform(cfg, (0.0,) * 3, (1.0,) * 3, "ten_crop")(path)
    assert one.shape == (3, 224, 224) and flips.shape == (2, 3, 224, 224) and ten.shape == (10, 3, 224, 224)
    assert torch.equal(flips[0], one) and torch.equal(flips[1], one.flip(-1)) and torch.equal(ten[4], one)


def test_big_jpegs_decode_at_reduced_scale(tmp_path, monkeypatch):
    # rrc on a 2000x1500 photo needing ~224 pixels must not decode the full 3 megapixels
    path = tmp_path / "big.jpg"
    photo(2000, 1500).save(path, quality=80)
    import reslab.data.transforms as T

    decoded = []
    real = T.load_image
    monkeypatch.setattr(T, "load_image", lambda *a, **k: (lambda im: decoded.append(im.size) or im)(real(*a, **k)))
    cfg = DataConfig(augment="imagenet_paper", image_size=224, eval_resize=256)
    FileTrainTransform(cfg, (0.5,) * 3, (0.25,) * 3)(path, np.random.default_rng(0))
    assert min(decoded[0]) < 1500 and min(decoded[0]) >= 256
