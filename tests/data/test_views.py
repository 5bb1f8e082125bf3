"""Two-view batches for self-supervised methods, the SimCLR/BYOL photometric ops, unlabelled folders."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reslab.data import DataConfig, build_data
from reslab.data.batch_augment import BatchTrainAugment
from reslab.data.formats import UNLABELLED, open_source
from reslab.data.transforms import FileTrainTransform, adjust_hue, gaussian_blur, solarize, to_grayscale
from reslab.errors import ReslabError

from .conftest import random_rgb, write_folder

SIMCLR = dict(augment="rrc", image_size=16, color_jitter=0.4, hue=0.1, jitter_p=0.8, grayscale_p=0.2, views=2)


def test_two_views_batch_layout_and_seeding():
    aug = BatchTrainAugment(DataConfig(**SIMCLR), (0.5,) * 3, (0.25,) * 3, out_channels=3)
    x = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8)
    a = aug(x, torch.Generator().manual_seed(3))
    assert a.shape == (12, 3, 16, 16)  # the 6 first views, then the 6 second views
    assert torch.equal(a, aug(x, torch.Generator().manual_seed(3)))  # a pure function of the generator
    assert not torch.equal(a, aug(x, torch.Generator().manual_seed(4)))
    assert not torch.allclose(a[:6], a[6:])  # two different augmentations of each image
    # each half is a view of the images in order: a plain image's views are plain, a ramp's are not
    x = torch.zeros(6, 3, 16, 16, dtype=torch.uint8)
    x[3:] = torch.arange(16, dtype=torch.uint8).mul(16).view(1, 1, 1, 16)
    out = aug(x, torch.Generator().manual_seed(5))
    spread = out.flatten(2).std(dim=2).mean(dim=1)  # per image, over pixels
    assert (spread[[0, 1, 2, 6, 7, 8]] < 1e-5).all() and (spread[[3, 4, 5, 9, 10, 11]] > 1e-3).all()


def test_hue_rotation_matches_colorsys():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 3, 3, generator=g)
    shift = torch.tensor([0.1, -0.25, 0.5, 0.0])
    out = adjust_hue(x, shift)
    for b in range(4):
        for i in range(3):
            for j in range(3):
                h, s, v = colorsys.rgb_to_hsv(*x[b, :, i, j].tolist())
                ref = colorsys.hsv_to_rgb((h + shift[b].item()) % 1.0, s, v)
                assert out[b, :, i, j].tolist() == pytest.approx(list(ref), abs=1e-5)
    assert torch.allclose(adjust_hue(x[0], 0.0), x[0], atol=1e-6)  # one image, no shift: unchanged


def test_blur_solarize_grayscale_by_hand():
    flat = torch.full((2, 3, 8, 8), 0.3)
    assert torch.allclose(gaussian_blur(flat, torch.tensor([0.5, 2.0]), 3), flat)  # a constant image stays
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 4, 4] = 1.0
    sigma = 1.0
    out = gaussian_blur(x, torch.tensor([sigma]), 5)
    k1 = torch.exp(-0.5 * (torch.arange(-2.0, 3.0) / sigma) ** 2)
    k1 = k1 / k1.sum()
    assert torch.allclose(out[0, 0, 2:7, 2:7], torch.outer(k1, k1), atol=1e-6)  # the 2-D Gaussian around the spike
    assert out.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert solarize(torch.tensor([0.2, 0.5, 0.9])).tolist() == pytest.approx([0.2, 0.5, 0.1])
    grey = to_grayscale(torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1))
    assert grey.flatten().tolist() == pytest.approx([0.299] * 3)


def test_jitter_probability_zero_leaves_colours_alone():
    x = torch.randint(0, 256, (8, 3, 8, 8), dtype=torch.uint8)
    plain = BatchTrainAugment(DataConfig(augment="none", image_size=8), (0.0,) * 3, (1.0,) * 3, 3)
    never = BatchTrainAugment(DataConfig(augment="none", image_size=8, color_jitter=0.8, hue=0.3, jitter_p=0.0),
                              (0.0,) * 3, (1.0,) * 3, 3)  # fmt: skip
    always = BatchTrainAugment(DataConfig(augment="none", image_size=8, color_jitter=0.8, hue=0.3), (0.0,) * 3, (1.0,) * 3, 3)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.equal(never(x, g()), plain(x, g()))
    assert not torch.allclose(always(x, g()), plain(x, g()))


def test_per_view_probabilities_make_asymmetric_views():
    cfg = DataConfig(augment="none", image_size=8, views=2, solarize_p=(0.0, 1.0))
    aug = BatchTrainAugment(cfg, (0.0,) * 3, (1.0,) * 3, 3)
    x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    out = aug(x, torch.Generator().manual_seed(0))
    clean = x.float() / 255
    assert torch.allclose(out[:4], clean) and torch.allclose(out[4:], solarize(clean))


def test_view_options_are_checked():
    with pytest.raises(ReslabError, match="data.views"):
        DataConfig(views=3)
    with pytest.raises(ReslabError, match="blur_p"):
        DataConfig(views=2, blur_p=(0.1, 0.2, 0.3))
    with pytest.raises(ReslabError, match="grayscale_p"):
        DataConfig(grayscale_p=1.5)
    with pytest.raises(ReslabError, match="hue"):
        DataConfig(hue=0.7)


def test_unlabelled_folder_at_any_depth(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "photos"
    (root / "2021" / "summer").mkdir(parents=True)
    (root / ".thumbs").mkdir()
    for path in (root / "a.png", root / "2021" / "b.png", root / "2021" / "summer" / "c.jpg", root / ".thumbs" / "d.png"):
        random_rgb(rng, 20, 24).save(path)
    (root / "notes.txt").write_text("not an image")
    loose = tmp_path / "loose"
    loose.mkdir()
    random_rgb(rng).save(loose / "x.png")
    with pytest.raises(ReslabError, match="no class folders"):
        open_source(loose)  # a labelled read wants class folders
    assert open_source(loose, labelled=False).splits["train"].paths == (loose / "x.png",)
    source = open_source(root, labelled=False)
    assert source.classes == [UNLABELLED]
    assert sorted(p.name for p in source.splits["train"].paths) == ["a.png", "b.png", "c.jpg"]  # hidden folder left out
    data = build_data(DataConfig(path=str(root), labelled=False, image_size=16, augment="rrc", views=2, in_memory="yes",
                                 cache_decoded=False, workers=0), batch_size=3, seed=0)  # fmt: skip
    images, labels = next(iter(data.train.batches(0)))
    assert images.shape == (6, 3, 16, 16) and labels.shape == (3,)
    assert data.eval is None


def test_file_loader_yields_two_views(tmp_path):
    root = write_folder(tmp_path / "set", per_class=(4, 4), size=(40, 30))
    cfg = DataConfig(path=str(root / "train"), image_size=16, in_memory="no", workers=0, **{k: v for k, v in SIMCLR.items() if k != "image_size"})
    t = FileTrainTransform(cfg, (0.5,) * 3, (0.25,) * 3)
    one = t(sorted((root / "train" / "cat").iterdir())[0], np.random.default_rng(0))
    assert one.shape == (2, 3, 16, 16) and not torch.allclose(one[0], one[1])
    data = build_data(cfg, batch_size=4, seed=0)
    assert not data.in_memory
    images, labels = next(iter(data.train.batches(0)))
    assert images.shape == (8, 3, 16, 16) and labels.shape == (4,)
