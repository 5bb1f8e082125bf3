"""A tiny in-memory dataset that follows the `reslab.data` interface exactly (fast, no files)."""

from __future__ import annotations

import pytest
import torch

from reslab.train.config import load_config


class SyntheticTrain:
    """Batches are a pure function of (seed, epoch, batch index, rank), like reslab.data's loaders."""

    def __init__(self, images, labels, batch_size, seed, rank=0, world_size=1):
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.seed, self.rank, self.world_size = seed, rank, world_size

    @property
    def num_samples(self):
        return len(self.labels)

    def __len__(self):
        return len(self.labels) // self.world_size // self.batch_size

    def sample_images(self, n):
        """Unaugmented training images, for models with a data-dependent initialisation."""
        return self.images[:n]

    def batches(self, epoch, start_batch=0):
        perm = torch.randperm(len(self.labels), generator=torch.Generator().manual_seed(self.seed * 1000 + epoch))
        shard = perm[self.rank :: self.world_size]
        for b in range(start_batch, len(self)):
            idx = shard[b * self.batch_size : (b + 1) * self.batch_size]
            x = self.images[idx].clone()
            # random flips and noise: augmentation that is a pure function of the batch position
            g = torch.Generator().manual_seed(((self.seed * 7919 + epoch) * 7919 + b) * 64 + self.rank)
            flip = torch.rand(len(idx), generator=g) < 0.5
            x[flip] = x[flip].flip(-1)
            x += 0.1 * torch.randn(x.shape, generator=g)
            yield x, self.labels[idx]


class SyntheticEval:
    def __init__(self, images, labels, batch_size):
        self.images, self.labels, self.batch_size = images, labels, batch_size

    @property
    def num_samples(self):
        return len(self.labels)

    def batches(self):
        for i in range(0, len(self.labels), self.batch_size):
            yield self.images[i : i + self.batch_size], self.labels[i : i + self.batch_size]


class SyntheticData:
    def __init__(self, n_train=64, n_eval=32, num_classes=4, size=16, batch_size=16, seed=0, rank=0, world_size=1):
        g = torch.Generator().manual_seed(1234)
        protos = torch.randn(num_classes, 3, size, size, generator=g)
        def make(n):
            y = torch.arange(n) % num_classes
            return protos[y] + 0.5 * torch.randn(n, 3, size, size, generator=g), y
        self.classes = [f"c{i}" for i in range(num_classes)]
        self.num_channels, self.mean, self.std = 3, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        self.train = SyntheticTrain(*make(n_train), batch_size, seed, rank, world_size)
        ex, ey = make(n_eval)
        self.eval = SyntheticEval(ex, ey, batch_size)
        self.train_size, self.eval_size = n_train, n_eval

    def eval_tta(self, kind):
        views = [self.eval.images, self.eval.images.flip(-1)]
        return SyntheticEval(torch.stack(views, dim=1), self.eval.labels, self.eval.batch_size)


@pytest.fixture
def tiny_config(tmp_path):
    """resnet20 on 16x16 inputs, 4 classes, batch 16: a few steps take well under a second."""
    def make(*overrides):
        return load_config(None, [f'run.dir="{tmp_path / "runs"}"', "run.progress=false", "run.tensorboard=false",
                                  "model.name=resnet20", "train.batch_size=16", "train.epochs=2", "data.image_size=16",
                                  "optim.lr=0.05", *overrides])
    return make


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine, two spinning OpenMP threads per test are ~10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
