import numpy as np
import pytest
import torch

from reslab.data.batch_augment import (
    BatchTrainAugment,
    draw_pad_crop_flip,
    draw_rrc_boxes,
    pad_crop_flip,
    resized_crop,
)
from reslab.data.config import DataConfig
from reslab.data.transforms import pad_crop_flip_reference
from reslab.errors import ReslabError


def test_batched_pad_crop_flip_equals_the_per_image_reference():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=g)
    dy, dx, flip = draw_pad_crop_flip(64, 4, g)
    out = pad_crop_flip(x, dy, dx, flip, pad=4)
    for i in range(64):
        ref = pad_crop_flip_reference(x[i].numpy(), 4, int(dy[i]), int(dx[i]), bool(flip[i]))
        assert np.array_equal(out[i].numpy(), ref), i
    assert flip.any() and not flip.all() and (dy == 0).any() and (dx == 8).any()


def test_pad_crop_flip_extremes_by_hand():
    x = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4) + 1
    # window at (0, 0) of the 2-pixel padded image: the image moves down-right, zeros enter top-left
    out = pad_crop_flip(x, torch.tensor([0]), torch.tensor([0]), torch.tensor([False]), pad=2)
    assert out[0, 0].tolist() == [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 2], [0, 0, 5, 6]]
    out = pad_crop_flip(x, torch.tensor([2]), torch.tensor([2]), torch.tensor([True]), pad=2)
    assert torch.equal(out[0, 0], x[0, 0].flip(-1))


def test_rrc_boxes_and_resized_crop_identity():
    g = torch.Generator().manual_seed(0)
    top, left, h, w = draw_rrc_boxes(500, 32, 32, g)
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 32).all() and (left + w <= 32).all()
    area = h * w / 1024
    assert area.min() >= 0.08 - 0.02 and area.max() <= 1.0
    # the full box without flip reproduces the image exactly
    x = torch.rand(2, 3, 16, 16)
    full = torch.tensor([0.0, 0.0]), torch.tensor([0.0, 0.0]), torch.tensor([16.0, 16.0]), torch.tensor([16.0, 16.0])
    out = resized_crop(x, *full, torch.tensor([False, True]), 16)
    assert torch.allclose(out[0], x[0], atol=1e-5) and torch.allclose(out[1], x[1].flip(-1), atol=1e-5)
    # a box of the top-left quadrant, upsampled x2 with nearest-equivalent centres
    q = resized_crop(x, torch.zeros(2), torch.zeros(2), torch.full((2,), 8.0), torch.full((2,), 8.0), torch.tensor([False, False]), 8)
    assert torch.allclose(q, x[:, :, :8, :8], atol=1e-5)


@pytest.mark.parametrize("augment", ["cifar_paper", "rrc", "none"])
def test_batch_augment_is_seeded_and_normalised(augment):
    cfg = DataConfig(augment=augment, image_size=32, color_jitter=0.3, pca_lighting=0.1)
    aug = BatchTrainAugment(cfg, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), out_channels=3)
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    a = aug(x, torch.Generator().manual_seed(1))
    b = aug(x, torch.Generator().manual_seed(1))
    c = aug(x, torch.Generator().manual_seed(2))
    assert a.shape == (16, 3, 32, 32) and a.dtype == torch.float32 and torch.equal(a, b) and not torch.equal(a, c)


def test_none_is_plain_normalisation_and_grey_expands():
    cfg = DataConfig(augment="none", image_size=4)
    aug = BatchTrainAugment(cfg, (0.5,), (0.5,), out_channels=3)
    x = torch.tensor([0, 255], dtype=torch.uint8).repeat(8).view(1, 1, 4, 4)
    out = aug(x, torch.Generator())
    assert out.shape == (1, 3, 4, 4) and out.min() == -1 and out.max() == 1


def test_imagenet_paper_augmentation_is_refused_in_memory():
    with pytest.raises(ReslabError, match="cifar_paper"):
        BatchTrainAugment(DataConfig(augment="imagenet_paper", image_size=224, eval_resize=256), (0.5,) * 3, (0.5,) * 3, 3)


def test_random_erasing_zeroes_one_rectangle_per_chosen_image():
    from reslab.data.transforms import ERASE_SCALE, random_erasing

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, 32, 32) + 5.0  # no zeros of its own
    draws = torch.rand(64, 5, generator=gen)
    out = random_erasing(x, draws, p=0.5)
    erased = (out == 0).all(dim=1)  # (B, H, W): pixels zeroed on every channel
    chosen = draws[:, 0] < 0.5
    assert (erased.flatten(1).any(1) == chosen).all()
    for mask in erased[chosen]:
        rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert mask.sum() == h * w  # one rectangle
        assert ERASE_SCALE[0] * 1024 * 0.5 <= h * w <= ERASE_SCALE[1] * 1024 * 1.6
    torch.testing.assert_close(out[~chosen], x[~chosen])
    one = random_erasing(x[0], draws[0], p=1.0)  # one image (C, H, W), as the file pipeline calls it
    assert one.shape == x[0].shape and (one == 0).any()


def test_reflect_padding_equals_numpy_reflect_reference():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (32, 3, 8, 8), dtype=torch.uint8, generator=g)
    dy, dx, flip = draw_pad_crop_flip(32, 2, g)
    out = pad_crop_flip(x, dy, dx, flip, pad=2, mode="reflect")
    for i in range(32):
        ref = pad_crop_flip_reference(x[i].numpy(), 2, int(dy[i]), int(dx[i]), bool(flip[i]), "reflect")
        assert np.array_equal(out[i].numpy(), ref), i
    # by hand: the window at (0, 0) mirrors row 1 and column 1 into the border (no zeros enter)
    one = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4)
    shifted = pad_crop_flip(one, torch.tensor([1]), torch.tensor([1]), torch.tensor([False]), pad=2, mode="reflect")
    assert shifted[0, 0, 0].tolist() == [5, 4, 5, 6] and shifted[0, 0, :, 0].tolist() == [5, 1, 5, 9]
    with pytest.raises(ValueError, match="reflect padding"):
        pad_crop_flip(one, torch.tensor([0]), torch.tensor([0]), torch.tensor([False]), pad=4, mode="reflect")


def test_alternating_flip_mirrors_every_image_once_per_two_epochs():
    cfg = DataConfig(augment="cifar_paper", image_size=4, cifar_pad=0, alternate_flip=True)
    aug = BatchTrainAugment(cfg, (0.0,) * 3, (1 / 255,) * 3, out_channels=3)
    x = torch.randint(0, 256, (64, 3, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    from reslab.data.batch_augment import alternating_flips

    base = alternating_flips(64, seed=5)
    even = aug(x, torch.Generator().manual_seed(0), base)
    odd = aug(x, torch.Generator().manual_seed(1), base ^ True)
    mirrored_even = (even.round() == x.flip(-1).float()).flatten(1).all(1)
    mirrored_odd = (odd.round() == x.flip(-1).float()).flatten(1).all(1)
    assert torch.equal(mirrored_even, base) and torch.equal(mirrored_odd, ~base)
    assert 16 < int(base.sum()) < 48
