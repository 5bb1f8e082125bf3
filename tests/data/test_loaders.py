import numpy as np
import pytest
import torch
from tests.data.conftest import write_cifar10, write_folder

from reslab.data import DataConfig, build_data
from reslab.data.loaders import epoch_shard


@pytest.fixture
def cifar(tmp_path):
    write_cifar10(tmp_path / "cifar-10-batches-py", per_batch=20)
    return tmp_path / "cifar-10-batches-py"


def _same(a, b):
    return len(a) == len(b) and all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))


def test_in_memory_resume_mid_epoch_gives_the_same_batches(cifar):
    data = build_data(DataConfig(path=str(cifar), color_jitter=0.2, pca_lighting=0.1), 8, seed=3)
    assert data.in_memory and len(data.train) == 100 // 8
    full = list(data.train.batches(epoch=2))
    resumed = list(build_data(DataConfig(path=str(cifar), color_jitter=0.2, pca_lighting=0.1), 8, seed=3).train.batches(2, start_batch=5))
    assert _same(full[5:], resumed)
    assert not torch.equal(full[0][0], list(data.train.batches(epoch=3))[0][0])  # epochs differ
    other_seed = build_data(DataConfig(path=str(cifar)), 8, seed=4)
    assert not torch.equal(full[0][1], next(other_seed.train.batches(2))[1])


def test_file_loader_resume_with_worker_processes(tmp_path):
    root = write_folder(tmp_path / "f", per_class=(9, 9), size=(40, 30), splits=("train",))
    cfg = DataConfig(path=str(root), augment="rrc", image_size=24, eval_resize=28, in_memory="no", workers=0)
    full = list(build_data(cfg, 4, seed=1).train.batches(1))
    with_workers = build_data(DataConfig(**{**cfg.__dict__, "workers": 2}), 4, seed=1)
    assert not with_workers.in_memory and len(full) == 4
    # the worker count does not change a pixel: per-sample seeds come from the epoch position
    assert _same(full[2:], list(with_workers.train.batches(1, start_batch=2)))
    assert _same(full, list(with_workers.train.batches(1)))


@pytest.mark.parametrize("n,world", [(100, 4), (103, 4), (50, 3)])
def test_shards_are_disjoint_and_cover_the_epoch(n, world):
    shards = [epoch_shard(n, seed=0, epoch=5, rank=r, world_size=world) for r in range(world)]
    assert len({len(s) for s in shards}) == 1  # every rank runs the same number of steps
    allidx = torch.cat(shards)
    assert len(allidx.unique()) == len(allidx) == (n // world) * world
    assert set(allidx.tolist()) <= set(range(n))
    # the dropped remainder rotates with the epoch, so no sample is left out every epoch
    seen = set()
    for e in range(10):
        seen |= set(torch.cat([epoch_shard(n, 0, e, r, world) for r in range(world)]).tolist())
    assert seen == set(range(n))


def test_distributed_loaders_see_disjoint_samples(cifar):
    cfg = DataConfig(path=str(cifar), augment="none")
    loaders = [build_data(cfg, 10, seed=0, rank=r, world_size=2).train for r in range(2)]
    assert [len(ld) for ld in loaders] == [5, 5]
    labels = [torch.cat([y for _, y in ld.batches(0)]) for ld in loaders]
    idx = [ld.epoch_indices(0) for ld in loaders]
    assert not set(idx[0].tolist()) & set(idx[1].tolist()) and len(idx[0]) + len(idx[1]) == 100
    assert all(torch.equal(lab, ld.labels[i]) for lab, ld, i in zip(labels, loaders, idx))


def test_eval_is_fixed_order_unaugmented_and_tta_views(cifar):
    data = build_data(DataConfig(path=str(cifar)), 16, seed=0)
    assert data.eval_split == "test" and data.eval_size == 20 and data.classes[0] == "airplane"
    a = list(data.eval.batches())
    b = list(data.eval.batches())
    assert _same(a, b) and [len(y) for _, y in a] == [16, 4]
    # unaugmented: un-normalising gives back the stored pixels
    x0 = a[0][0][0] * torch.tensor(data.std).view(3, 1, 1) + torch.tensor(data.mean).view(3, 1, 1)
    assert torch.allclose(x0 * 255, data.eval.images[0].float(), atol=1e-3)
    flip = next(data.eval_tta("flip").batches())[0]
    ten = next(data.eval_tta("ten_crop").batches())[0]
    assert flip.shape == (16, 2, 3, 32, 32) and ten.shape == (16, 10, 3, 32, 32)
    assert torch.allclose(flip[:, 0], a[0][0]) and torch.allclose(ten[:, 4], a[0][0], atol=1e-6)


def test_channels_last_and_mean_from_the_training_set(cifar):
    data = build_data(DataConfig(path=str(cifar)), 8, seed=0, channels_last=True)
    x, y = next(data.train.batches(0))
    assert x.is_contiguous(memory_format=torch.channels_last) and y.dtype == torch.int64
    imgs = data.train.images.double() / 255
    assert data.mean == pytest.approx(imgs.mean(dim=(0, 2, 3)).tolist(), abs=1e-4)
    assert data.std == pytest.approx(imgs.std(dim=(0, 2, 3), unbiased=False).tolist(), abs=1e-4)


def test_limit_per_class_and_batch_size_errors(cifar):
    from reslab.errors import ReslabError

    data = build_data(DataConfig(path=str(cifar), limit_per_class=2, val_fraction=0.1), 4, seed=0)
    assert np.bincount(data.train.labels.numpy()).max() <= 2
    with pytest.raises(ReslabError, match="no full batch"):
        build_data(DataConfig(path=str(cifar)), 1000, seed=0)
    with pytest.raises(ReslabError, match="augment"):
        DataConfig(augment="autoaugment")
    with pytest.raises(ReslabError, match="unknown \\[data\\] key"):
        DataConfig.from_dict({"pth": "x"})


@pytest.mark.slow  # writes 1,797 PNGs and runs the whole CLI: ~15 s on a shared CPU
def test_digits_folder_trains_in_memory(tmp_path, capsys):
    from reslab.cli import main

    with pytest.raises(SystemExit) as e:
        main(["data", "digits", str(tmp_path / "digits")])
    assert e.value.code in (0, None) and "1438 train and 359 val" in capsys.readouterr().out
    data = build_data(DataConfig(path=str(tmp_path / "digits"), workers=0), 64, seed=0)
    assert data.in_memory and data.classes == [str(d) for d in range(10)]
    assert data.train_size == 1438 and data.eval_size == 359
    x, _ = next(data.train.batches(0))
    assert x.shape == (64, 3, 32, 32)


def test_auto_in_memory_for_small_images_on_the_fly_for_photos(tmp_path):
    small = write_folder(tmp_path / "small", per_class=(4, 4), size=(32, 32), splits=("train",))
    photos = write_folder(tmp_path / "photos", per_class=(4, 4), size=(300, 200), splits=("train",))
    assert build_data(DataConfig(path=str(small), workers=0), 4, seed=0).in_memory
    data = build_data(DataConfig(path=str(photos), augment="rrc", image_size=64, eval_resize=72, workers=0), 4, seed=0)
    assert not data.in_memory and data.mean == (0.485, 0.456, 0.406)  # ImageNet's unless given
    x, _ = next(data.train.batches(0))
    assert x.shape == (4, 3, 64, 64)
    # forced into memory, photos are resized to image_size once and augmented in batches
    forced = build_data(DataConfig(path=str(photos), augment="rrc", image_size=64, in_memory="yes", workers=0), 4, seed=0)
    assert forced.in_memory and forced.train.images.shape == (8, 3, 64, 64)


def test_augmentation_preview_first_column_is_the_clean_image(cifar, tmp_path):
    from PIL import Image

    from reslab.data.preview import augmentation_views, save_augmentation_preview

    cfg = DataConfig(path=str(cifar), eval_split="none")
    views, names = augmentation_views(cfg, samples=3, draws=2, seed=0)
    assert views.shape == (3, 3, 3, 32, 32) and all(n in build_data(cfg, 1, seed=0).classes for n in names)
    stored = build_data(cfg, 1, seed=0).train.images.float() / 255
    assert any(torch.allclose(views[0, 0], s, atol=1e-6) for s in stored)  # un-normalised exactly
    assert not torch.equal(views[0, 1], views[0, 2])  # independent draws
    png = save_augmentation_preview(cfg, tmp_path / "p.png", samples=2, draws=2)
    assert Image.open(png).size[0] > 100


@pytest.mark.parametrize("workers", [0, 1])
def test_file_loaders_leave_the_global_generator_alone(tmp_path, workers):
    # A DataLoader iterator without a generator of its own draws its workers' seed from the global
    # one, which shifts the model's dropout draws after a resume (issue 12, defect 1).
    root = write_folder(tmp_path / "f", per_class=(4, 4), splits=("train", "val"))
    data = build_data(DataConfig(path=str(root), augment="none", image_size=16, in_memory="no", workers=workers), 4, seed=0)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    list(data.train.batches(0))
    list(data.train.batches(1, start_batch=1))
    list(data.eval.batches())
    assert torch.equal(torch.get_rng_state(), before)


def test_alternate_flip_loader_and_flip_shift_views(cifar):
    cfg = DataConfig(path=str(cifar), cifar_pad=0, alternate_flip=True)
    data = build_data(cfg, 100, seed=0)
    order = [data.train.epoch_indices(e) for e in (0, 1)]
    (x0, _), (x1, _) = next(data.train.batches(0)), next(data.train.batches(1))
    # un-shuffle both epochs: every image appears mirrored in exactly one of them
    a, b = torch.empty_like(x0), torch.empty_like(x1)
    a[order[0]], b[order[1]] = x0, x1
    assert torch.allclose(a, b.flip(-1), atol=1e-5) and not torch.allclose(a, b, atol=1e-5)
    sample = data.train.sample_images(10)
    spread = torch.linspace(0, len(data.train.images) - 1, 10).round().long()
    expected = (data.train.images[spread].float() / 255 - torch.tensor(data.mean).view(3, 1, 1)) / torch.tensor(data.std).view(3, 1, 1)
    assert sample.shape == (10, 3, 32, 32) and torch.allclose(sample, expected, atol=1e-5)
    views = data.eval_tta("flip_shift")
    v = next(views.batches())[0]
    plain = next(data.eval.batches())[0]
    assert v.shape == (len(plain), 6, 3, 32, 32)
    assert torch.allclose(v[:, 0], plain) and torch.allclose(v[:, 1], plain.flip(-1))
    assert torch.allclose(v[:, 2][..., 1:, 1:], plain[..., :-1, :-1]) and torch.allclose(v[:, 4][..., :-1, :-1], plain[..., 1:, 1:])
    assert sum(views.view_weights) == 1.0


def test_alternate_flip_is_refused_for_file_data(tmp_path):
    from reslab.errors import ReslabError

    root = write_folder(tmp_path / "f", per_class=(3, 3), size=(40, 30), splits=("train",))
    with pytest.raises(ReslabError, match="alternate_flip needs in-memory"):
        build_data(DataConfig(path=str(root), augment="rrc", image_size=24, in_memory="no", alternate_flip=True), 2)


def test_eval_loader_per_class_subset_shows_every_class(tmp_path):
    """A split is stored class by class: a per-class subset (the SSL report's map) holds every class, not the first."""
    from reslab.data.build import build_eval_loader

    write_folder(tmp_path / "f", classes=("a", "b", "c"), per_class=(5, 5, 5), splits=("",))
    cfg = DataConfig(path=str(tmp_path / "f"), image_size=8)
    first_six = torch.cat([y for _x, y in build_eval_loader(cfg, "train", 6)[0].batches()])[:6]
    assert set(first_six.tolist()) != {0, 1, 2}  # the case the subset is for
    loader, classes = build_eval_loader(cfg, "train", 4, per_class=2)
    labels = torch.cat([y for _x, y in loader.batches()])
    assert classes == ["a", "b", "c"] and sorted(labels.tolist()) == [0, 0, 1, 1, 2, 2]


def test_eval_limit_per_class_evaluates_on_a_seeded_per_class_subset(cifar):
    full = build_data(DataConfig(path=str(cifar), eval_split="test"), 4, seed=0)
    cut = build_data(DataConfig(path=str(cifar), eval_split="test", eval_limit_per_class=1), 4, seed=0)
    labels = torch.cat([y for _x, y in cut.eval]).numpy()
    # every class present in the test split keeps exactly one image, and training is untouched
    assert sorted(labels.tolist()) == sorted(set(torch.cat([y for _x, y in full.eval]).tolist()))
    assert cut.eval_size < full.eval_size and cut.train_size == full.train_size
    again = build_data(DataConfig(path=str(cifar), eval_split="test", eval_limit_per_class=1), 4, seed=0)
    assert _same(list(cut.eval), list(again.eval))
