"""Self-supervised runs through the engine: run folder, kNN monitor, exact mid-epoch resume, reuse of the backbone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reslab.data import build_data
from reslab.errors import ReslabError
from reslab.train import fit, load_config
from reslab.train.checkpoint import load_checkpoint
from reslab.train.runs import load_run_model


def colour_images(folder: Path, n: int, classes=("red", "green", "blue"), flat: bool = False, seed: int = 0) -> Path:
    """16x16 noise with one channel raised: in class folders, or all in one folder (`flat`)."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        target = folder if flat else folder / name
        target.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            a = rng.integers(0, 80, (16, 16, 3)).astype(np.uint8)
            a[..., c] += 150
            Image.fromarray(a).save(target / f"{name}{i}.png")
    return folder


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("ssl")
    photos = colour_images(root / "photos", 8, flat=True)  # 24 unlabelled images, no class folders
    labelled = root / "labelled"
    colour_images(labelled / "train", 6)
    colour_images(labelled / "test", 3, seed=1)
    return photos, labelled


def toy_config(recipe, photos, runs, *extra):
    return load_config(recipe, [f'data.path="{photos}"', f'run.dir="{runs}"', "run.progress=false", "run.tensorboard=false",
                                "data.image_size=8", "data.workers=0", "data.cache_decoded=false", "train.batch_size=6",
                                "train.epochs=2", "train.amp=off", "train.channels_last=false", "ssl.proj_hidden=16",
                                "ssl.proj_dim=8", "ssl.pred_hidden=16", "ssl.queue_size=20", "ssl.key_splits=2", *extra])  # fmt: skip


@pytest.mark.parametrize("recipe", ["ssl_simclr", "ssl_moco", "ssl_byol"])
def test_ssl_run_folder_and_knn_monitor(images, tmp_path, recipe):
    photos, labelled = images
    history = fit(toy_config(recipe, photos, tmp_path / "runs", f'ssl.knn_data="{labelled}"', "ssl.knn_k=5"))
    rows = history.rows
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all("train_top1" not in r and np.isfinite(r["train_loss"]) for r in rows)
    assert all(0 <= r["knn_top1"] <= 100 and 0 <= r["knn_top5"] <= 100 for r in rows)
    assert history.best_metric == max(r["knn_top1"] for r in rows)
    model, config, classes, pre = load_run_model(history.run_dir)
    assert classes == [] and config["ssl"]["method"] == recipe.split("_")[1]
    assert not any(k.startswith("fc.") for k in model.state_dict())  # the exported backbone has no classifier
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 64)
    # the checkpoint holds the whole training module (heads, teacher, queue) for exact resume
    ckpt = load_checkpoint(history.run_dir)["model"]
    assert any(k.startswith("projector.") for k in ckpt)
    if recipe != "ssl_simclr":
        assert any(k.startswith("teacher.") for k in ckpt)


def interrupt_at(data, epoch, batch):
    """The same data, but Ctrl-C when batch `batch` of `epoch` is requested."""
    inner = data.train.batches

    def batches(e, start_batch=0):
        for i, item in enumerate(inner(e, start_batch), start=start_batch):
            if (e, i) == (epoch, batch):
                raise KeyboardInterrupt
            yield item

    data.train.batches = batches
    return data


@pytest.mark.parametrize("recipe", ["ssl_moco", "ssl_byol"])
def test_ssl_resume_mid_epoch_is_bit_exact(images, tmp_path, recipe):
    photos, _ = images
    full_cfg = toy_config(recipe, photos, tmp_path / "full")
    full = fit(full_cfg)
    cfg = toy_config(recipe, photos, tmp_path / "parts")
    data = build_data(cfg.data, cfg.train.batch_size, seed=cfg.train.seed)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, data=interrupt_at(data, epoch=1, batch=2))  # 4 steps per epoch: stopped at step 6 of 8
    run_dir = next((tmp_path / "parts").iterdir())
    assert load_checkpoint(run_dir)["state"]["step"] == 6
    resumed = fit(cfg, resume=run_dir)
    a = load_checkpoint(full.run_dir)["model"]
    b = load_checkpoint(resumed.run_dir)["model"]
    assert a.keys() == b.keys()
    for k in a:  # student, heads, teacher and (MoCo) the queue and its pointer
        assert torch.equal(a[k], b[k]), k
    assert [r["train_loss"] for r in full.rows] == [r["train_loss"] for r in resumed.rows]


def test_ssl_config_errors(images, tmp_path):
    photos, _ = images
    with pytest.raises(ReslabError, match="data.views = 2"):
        fit(toy_config("ssl_simclr", photos, tmp_path, "data.views=1"))
    with pytest.raises(ReslabError, match="eval_split"):
        fit(toy_config("ssl_simclr", photos, tmp_path, "data.eval_split=auto"))
    with pytest.raises(ReslabError, match="ssl.method"):
        toy_config("ssl_simclr", photos, tmp_path, "ssl.method=dino")
    # the kNN monitor's set is checked before any training, naming its key
    with pytest.raises(ReslabError, match="ssl.knn_data .*does not exist"):
        fit(toy_config("ssl_simclr", photos, tmp_path, f'ssl.knn_data="{tmp_path / "absent"}"'))
    with pytest.raises(ReslabError, match="ssl.knn_data: .*no class folders.*kNN monitor needs labelled"):
        fit(toy_config("ssl_simclr", photos, tmp_path, f'ssl.knn_data="{photos}"'))
    one_class = tmp_path / "one" / "a"
    one_class.mkdir(parents=True)
    (one_class / "x.png").write_bytes(next(photos.iterdir()).read_bytes())
    with pytest.raises(ReslabError, match="has 1 class; give two or more class folders"):
        fit(toy_config("ssl_simclr", photos, tmp_path, f'ssl.knn_data="{tmp_path / "one"}"'))
    assert not any(tmp_path.glob("*/checkpoints/*.pt"))


def test_ssl_backbone_embeds_and_fine_tunes(images, tmp_path):
    from reslab.embeddings import CnnEmbedder

    photos, labelled = images
    ssl_run = fit(toy_config("ssl_simclr", photos, tmp_path / "ssl")).run_dir
    embedder = CnnEmbedder(run=ssl_run, device="cpu")
    vectors = embedder.embed([embedder.preprocess(Image.open(p)) for p in sorted(photos.iterdir())[:3]])
    assert vectors.shape == (3, 64) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    # supervised fine-tuning from the self-supervised backbone: the run folder as initial weights
    tuned = fit(load_config(None, [f'data.path="{labelled}"', f'run.dir="{tmp_path / "tuned"}"', "run.progress=false",
                                   "run.tensorboard=false", "model.name=resnet20", f'model.weights="{ssl_run}"',
                                   "data.image_size=8", "data.workers=0", "train.batch_size=6", "train.epochs=1", "optim.lr=0"]))  # fmt: skip
    start = load_run_model(ssl_run)[0].state_dict()
    tuned_model, _config, classes, _pre = load_run_model(tuned.run_dir)
    assert classes == ["blue", "green", "red"] and tuned_model.fc.out_features == 3
    # at learning rate 0 the fine-tuned net keeps the self-supervised weights exactly
    tuned_state = tuned_model.state_dict()
    for key in ("conv1.weight", "layer3.2.conv2.weight", "bn1.weight"):
        assert torch.equal(tuned_state[key], start[key]), key


def test_two_views_without_a_method_is_a_config_error(images, tmp_path):
    photos, labelled = images
    cfg = load_config(None, [f'data.path="{labelled}"', f'run.dir="{tmp_path}"', "data.views=2", "data.image_size=8"])
    with pytest.raises(ReslabError, match="ssl.method"):
        fit(cfg)
