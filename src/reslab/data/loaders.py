"""Training and evaluation loaders: in-memory batched, or files decoded by DataLoader workers.

Determinism contract: the order and the augmentation of every training batch are a pure function
of (seed, epoch, batch index, rank). `batches(epoch, start_batch=k)` therefore yields exactly the
batches an uninterrupted epoch yields from k on, which gives exact mid-epoch resume without saving
any data RNG state. Each rank takes a disjoint shard of the epoch's permutation.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from ..processes import WorkerInit, stop_signals_blocked
from .batch_augment import BatchTrainAugment, alternating_flips, finish, single_thread_on_cpu
from .formats import ArraySplit, FileSplit
from .guard import BadFileLog, TooManyBadFiles, decode_or_replace
from .transforms import VIEW_WEIGHTS, flip_shift_views

Batch = tuple[torch.Tensor, torch.Tensor]

def derive_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (SeedSequence hashing: nearby inputs, unrelated streams)."""
    return int(np.random.SeedSequence([int(p) % 2**63 for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def epoch_shard(n: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1) -> torch.Tensor:
    """This rank's sample indices for `epoch`: a seeded permutation of range(n), cut to a multiple
    of world_size (every rank gets the same count) and dealt round-robin."""
    g = torch.Generator().manual_seed(derive_seed(seed, epoch, 0x5EED))
    perm = torch.randperm(n, generator=g)
    per_rank = n // world_size
    return perm[rank : per_rank * world_size : world_size]


def _to_device(x: torch.Tensor, y: torch.Tensor, device: torch.device, channels_last: bool) -> Batch:
    x = x.to(device, non_blocking=True)
    y = y.to(device, non_blocking=True)
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()
    return x, y


class InMemoryTrainLoader:
    """Batches of a uint8 tensor already on the device, augmented with tensor ops."""

    def __init__(self, split: ArraySplit, batch_size: int, augment: BatchTrainAugment, *, seed: int, rank: int,
                 world_size: int, device: torch.device, channels_last: bool):  # fmt: skip
        self.images = torch.from_numpy(split.images).to(device)
        self.labels = torch.from_numpy(split.labels).to(device)
        self.batch_size, self.augment = batch_size, augment
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.device, self.channels_last = device, channels_last
        cfg = getattr(augment, "cfg", None)
        alternate = cfg is not None and cfg.hflip and cfg.alternate_flip and cfg.augment != "none"
        self.base_flips = alternating_flips(len(self.labels), derive_seed(seed, 0xF119)) if alternate else None

    @property
    def num_samples(self) -> int:
        return len(self.labels)

    def sample_images(self, n: int) -> torch.Tensor:
        """n training images spread evenly over the split (every class even when the files are sorted
        by class), unaugmented and normalised: for data-dependent initialisation."""
        index = torch.linspace(0, len(self.images) - 1, min(n, len(self.images))).round().long().to(self.device)
        with single_thread_on_cpu(self.device):
            x = self.images[index].float().div_(255)
            return finish(x, self.augment.mean, self.augment.std, self.augment.out_channels)

    def __len__(self) -> int:
        return (self.num_samples // self.world_size) // self.batch_size

    def epoch_indices(self, epoch: int) -> torch.Tensor:
        return epoch_shard(self.num_samples, self.seed, epoch, self.rank, self.world_size)

    def batches(self, epoch: int, start_batch: int = 0) -> Iterator[Batch]:
        index = self.epoch_indices(epoch).to(self.device)
        bs = self.batch_size
        for b in range(start_batch, len(self)):
            rows = index[b * bs : (b + 1) * bs]
            g = torch.Generator().manual_seed(derive_seed(self.seed, epoch, b, self.rank))
            flip = None
            if self.base_flips is not None:
                flip = self.base_flips[rows.cpu()] ^ bool(epoch % 2)
            x = self.augment(self.images[rows], g, flip)
            yield _to_device(x, self.labels[rows], self.device, self.channels_last)


class InMemoryEvalLoader:
    """Fixed-order, unaugmented batches of a uint8 tensor; `views` adds test-time augmentation."""

    def __init__(self, split: ArraySplit, batch_size: int, mean, std, out_channels: int, *, rank: int, world_size: int,
                 device: torch.device, channels_last: bool, views: str | None = None, pad: int = 4):  # fmt: skip
        shard = np.arange(rank, len(split), world_size)
        self.images = torch.from_numpy(split.images[shard]).to(device)
        self.labels = torch.from_numpy(split.labels[shard]).to(device)
        self.batch_size, self.out_channels, self.views, self.pad = batch_size, out_channels, views, pad
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.device, self.channels_last = device, channels_last

    @property
    def num_samples(self) -> int:
        return len(self.labels)

    def __len__(self) -> int:
        return -(-self.num_samples // self.batch_size)

    def batches(self) -> Iterator[Batch]:
        for start in range(0, self.num_samples, self.batch_size):
            y = self.labels[start : start + self.batch_size]
            with single_thread_on_cpu(self.device):  # not around the yield: the model wants its threads
                x = self.images[start : start + self.batch_size].float().div_(255)
                x = self._views(x) if self.views else finish(x, self.mean, self.std, self.out_channels)
            if self.views:
                yield x.contiguous(), y  # (B, V, C, H, W): channels_last does not apply to 5-D
            else:
                yield _to_device(x, y, self.device, self.channels_last)

    def __iter__(self):
        return self.batches()

    @property
    def view_weights(self) -> tuple[float, ...] | None:
        return VIEW_WEIGHTS.get(self.views)

    def _views(self, x: torch.Tensor) -> torch.Tensor:
        if self.views == "flip":
            views = [x, x.flip(-1)]
        elif self.views == "flip_shift":
            views = flip_shift_views(x)
        else:  # ten_crop: the 4 corners and the centre of the zero-padded image, and their mirrors
            p, h, w = self.pad, x.shape[2], x.shape[3]
            padded = torch.nn.functional.pad(x, (p, p, p, p))
            offsets = [(0, 0), (0, 2 * p), (2 * p, 0), (2 * p, 2 * p), (p, p)]
            crops = [padded[:, :, dy : dy + h, dx : dx + w] for dy, dx in offsets]
            views = crops + [c.flip(-1) for c in crops]
        return torch.stack([finish(v, self.mean, self.std, self.out_channels) for v in views], dim=1)


# --------------------------------------------------------------------------------- file loaders


class _FileDataset(torch.utils.data.Dataset):
    """Items are keyed (index, sample_seed): the seed is drawn in the main process, so the output
    does not depend on which worker decodes it. Bad files are replaced by the next good one
    (flagged, so that evaluation can leave the stand-in out)."""

    def __init__(self, split: FileSplit, transform):
        self.paths, self.labels, self.transform = split.paths, split.labels, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key):
        index, sample_seed = key
        n = len(self.paths)
        try:
            x, used, bad = decode_or_replace(
                index, n, lambda j: self.transform(self.paths[j], np.random.default_rng(sample_seed))
            )
        except TooManyBadFiles as e:
            # raised in a worker, the error would reach the user wrapped in a worker traceback:
            # hand its sentence to the main process instead, which raises it as it is
            return None, -1, [], str(e), False
        return x, int(self.labels[used]), bad, None, used == index


def _collate(items):
    xs, ys, bad, errors, own = zip(*items)
    bad = [b for bs in bad for b in bs]
    error = next((e for e in errors if e), None)
    if error:
        return None, None, bad, error, None
    return torch.stack(xs), torch.tensor(ys, dtype=torch.int64), bad, None, torch.tensor(own, dtype=torch.bool)


def _checked(batch, bad_log: BadFileLog):
    """(images, labels, own): `own` is False where a neighbour stands in for a bad file."""
    x, y, bad, error, own = batch
    bad_log.record_all(bad)
    if error:
        raise TooManyBadFiles(error)
    return x, y, own


class _KeyedBatchSampler:
    """Yields lists of (index, seed) for the batches [start, len) of one epoch on one rank.
    Sampling runs in the main process, so set() before iter() works with persistent workers."""

    def __init__(self, loader: "FileTrainLoader"):
        self.loader = loader
        self.epoch, self.start = 0, 0

    def set(self, epoch: int, start: int) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return len(self.loader) - self.start

    def __iter__(self):
        ld, bs = self.loader, self.loader.batch_size
        index = ld.epoch_indices(self.epoch).tolist()
        for b in range(self.start, len(ld)):
            rows = index[b * bs : (b + 1) * bs]
            # per-sample seed from the sample's position in the epoch (not its worker): reproducible
            yield [(i, derive_seed(ld.seed, self.epoch, ld.rank, b * bs + k)) for k, i in enumerate(rows)]


def _make_dataloader(dataset, batch_sampler, workers: int, device: torch.device):
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        prefetch_factor=2 if workers > 0 else None,  # batches in flight per worker: memory grows with it
        # Without a generator of its own, every new iterator draws its workers' base seed from the
        # global torch generator, shifting the random draws of the model's dropout and drop-path;
        # the items are keyed by their own seeds, so this one only names the workers' seeds.
        generator=torch.Generator().manual_seed(0),
        # Ctrl-C or SIGTERM to the process group is the main process's to handle (it checkpoints);
        # a kill -9 of the main process takes the workers with it
        worker_init_fn=WorkerInit() if workers > 0 else None,
    )


def _iterate(loader) -> Iterator:
    """Iterate a DataLoader, starting its workers (if it starts any) with stop signals held back."""
    with stop_signals_blocked():
        batches = iter(loader)
    yield from batches


class FileTrainLoader:
    """Photos decoded and augmented per image by DataLoader worker processes."""

    def __init__(self, split: FileSplit, batch_size: int, transform, bad_log: BadFileLog, *, seed: int, rank: int,
                 world_size: int, workers: int, device: torch.device, channels_last: bool):  # fmt: skip
        self.split, self.batch_size, self.bad_log = split, batch_size, bad_log
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.device, self.channels_last = device, channels_last
        self.sampler = _KeyedBatchSampler(self)
        self.loader = _make_dataloader(_FileDataset(split, transform), self.sampler, workers, device)

    @property
    def num_samples(self) -> int:
        return len(self.split)

    def __len__(self) -> int:
        return (self.num_samples // self.world_size) // self.batch_size

    def epoch_indices(self, epoch: int) -> torch.Tensor:
        return epoch_shard(self.num_samples, self.seed, epoch, self.rank, self.world_size)

    def batches(self, epoch: int, start_batch: int = 0) -> Iterator[Batch]:
        self.sampler.set(epoch, start_batch)
        for batch in _iterate(self.loader):
            x, y, _ = _checked(batch, self.bad_log)  # training keeps the stand-ins: fixed batch sizes
            if x.dim() == 5:  # (B, views, C, H, W) -> (views * B, C, H, W): first views, then second views
                x = x.transpose(0, 1).flatten(0, 1)
            yield _to_device(x, y, self.device, self.channels_last)


class _EvalSampler:
    def __init__(self, n: int, batch_size: int, rank: int, world_size: int):
        self.index = list(range(rank, n, world_size))
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-len(self.index) // self.batch_size)

    def __iter__(self):
        for s in range(0, len(self.index), self.batch_size):
            yield [(i, 0) for i in self.index[s : s + self.batch_size]]


class FileEvalLoader:
    """Fixed-order evaluation batches of files (this rank's shard: indices rank::world_size)."""

    def __init__(self, split: FileSplit, batch_size: int, transform, bad_log: BadFileLog, *, rank: int, world_size: int,
                 workers: int, device: torch.device, channels_last: bool):  # fmt: skip
        self.sampler = _EvalSampler(len(split), batch_size, rank, world_size)
        self.loader = _make_dataloader(_FileDataset(split, transform), self.sampler, workers, device)
        self.bad_log, self.device, self.channels_last = bad_log, device, channels_last
        self.views = getattr(transform, "views", None)

    @property
    def num_samples(self) -> int:
        return len(self.sampler.index)

    def __len__(self) -> int:
        return len(self.sampler)

    @property
    def view_weights(self) -> tuple[float, ...] | None:
        return VIEW_WEIGHTS.get(self.views)

    def batches(self) -> Iterator[Batch]:
        for batch in _iterate(self.loader):
            x, y, own = _checked(batch, self.bad_log)
            if not own.all():  # a bad file is left out of the scores, not counted again through its stand-in
                if not own.any():
                    continue
                x, y = x[own], y[own]
            if x.dim() == 5:
                yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            else:
                yield _to_device(x, y, self.device, self.channels_last)

    def __iter__(self):
        return self.batches()
