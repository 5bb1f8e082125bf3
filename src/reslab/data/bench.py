"""`reslab bench data`: can the input pipeline feed the model?

Three measurements, all in one process on the same cores:
1. decode + augmentation images/s of real JPEG photos through the on-the-fly loader (worker
   processes), with the paper's scale augmentation and with RandomResizedCrop;
2. ResNet-18 training images/s (forward + backward + SGD step, batch 32, 224x224) as the yardstick
   the loader must outpace;
3. the in-memory batched CIFAR augmentation vs a textbook per-image PIL loop (pad, crop, flip,
   to-tensor, normalise), the baseline of the ratio.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import numpy as np
import torch

from .progress import resolve_workers

PHOTO_VARIANTS = 16  # crops per bundled photo: 11 x 16 = 176 JPEGs, five batches of 32 per epoch


def bench_photo_folder() -> Path:
    """Real photographs for the loader measurement when no --data is given: the photos bundled with
    scikit-image and scikit-learn, cut into seeded crops of ImageNet's typical size (shorter side
    375, longer up to 500, JPEG q=90), one class per photo: `train/<photo>/<k>.jpg`.

    Written once into $RESLAB_CACHE/datasets/bench-photos (default ~/.cache/reslab), built beside it
    and moved into place, so an interrupted run leaves no half folder."""
    import os
    import shutil
    import tempfile

    from ..sample_photos import bundled_photos

    root = Path(os.environ.get("RESLAB_CACHE") or Path.home() / ".cache" / "reslab") / "datasets"
    folder = root / "bench-photos"
    if (folder / "train").is_dir():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    building = Path(tempfile.mkdtemp(prefix=".bench-photos-", dir=root))
    try:
        for name, photo in bundled_photos().items():
            (building / "train" / name).mkdir(parents=True)
            for k in range(PHOTO_VARIANTS):
                w, h = photo.size
                side = int(min(w, h) * rng.uniform(0.6, 1.0))  # a crop of 60-100 % of the shorter side
                aspect = rng.uniform(1.0, 4 / 3)
                cw, ch = (min(w, int(side * aspect)), side) if rng.random() < 0.5 else (side, min(h, int(side * aspect)))
                x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
                crop = photo.crop((x, y, x + cw, y + ch))
                scale = 375 / min(cw, ch)
                crop = crop.resize((max(1, round(cw * scale)), max(1, round(ch * scale))))
                crop.save(building / "train" / name / f"{k:02d}.jpg", "JPEG", quality=90)
        os.replace(building, folder)
    except OSError:
        if not (folder / "train").is_dir():
            raise
    finally:
        shutil.rmtree(building, ignore_errors=True)  # gone already when it was moved into place
    return folder


def _timed(step, seconds: float, warmup: int = 1, min_calls: int = 3) -> float:
    """Calls step() (which returns how many images it did) for `seconds` and at least `min_calls`
    times; images/s."""
    for _ in range(warmup):
        step()
    n, calls, t0 = 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or calls < min_calls:
        calls += 1
        n += step()
    return n / (time.perf_counter() - t0)


def loader_rate(folder: Path, augment: str, workers: int, seconds: float) -> float:
    from . import DataConfig, build_data

    cfg = DataConfig(path=str(folder), augment=augment, image_size=224, eval_resize=256, in_memory="no",
                     workers=workers, eval_split="none")  # fmt: skip
    data = build_data(cfg, 32, seed=0)
    state = {"epoch": 0, "it": iter(())}

    def step():
        try:
            x, _ = next(state["it"])
        except StopIteration:
            state["epoch"] += 1
            state["it"] = data.train.batches(state["epoch"])
            x, _ = next(state["it"])
        return len(x)

    return _timed(step, seconds)


def resnet18_train_rate(seconds: float, threads: int) -> float:
    from ..models import create_model

    torch.set_num_threads(threads)
    model = create_model("resnet18", num_classes=1000).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(32, 3, 224, 224), torch.randint(0, 1000, (32,))

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        return 32

    return _timed(step, seconds)


def cifar_augment_rates(images: np.ndarray, seconds: float) -> tuple[float, float]:
    """(batched in-memory images/s, per-image DataLoader images/s) for the paper's CIFAR augmentation,
    both in this process's main thread (what a training loop without workers gets)."""
    from PIL import Image, ImageOps

    from ..preprocess import normalize, to_tensor
    from .batch_augment import BatchTrainAugment
    from .config import DataConfig

    mean, std = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
    aug = BatchTrainAugment(DataConfig(augment="cifar_paper"), mean, std, 3)
    tensor = torch.from_numpy(images)
    g = torch.Generator().manual_seed(0)
    pos = {"i": 0}

    def batched():
        i = pos["i"] = (pos["i"] + 128) % (len(tensor) - 128)
        aug(tensor[i : i + 128], g)
        return 128

    class TextbookCifar(torch.utils.data.Dataset):
        """torchvision's CIFAR10 + RandomCrop(32, padding=4) + RandomHorizontalFlip + ToTensor + Normalize."""

        hwc = np.ascontiguousarray(images.transpose(0, 2, 3, 1))  # torchvision keeps CIFAR as (N, H, W, C)

        def __len__(self):
            return len(self.hwc)

        def __getitem__(self, i):
            img = ImageOps.expand(Image.fromarray(self.hwc[i]), border=4, fill=0)
            top, left = np.random.randint(0, 9, size=2)
            img = img.crop((left, top, left + 32, top + 32))
            if np.random.rand() < 0.5:
                img = img.transpose(Image.FLIP_LEFT_RIGHT)
            return normalize(to_tensor(img), mean, std), 0

    loader = torch.utils.data.DataLoader(TextbookCifar(), batch_size=128, shuffle=True, num_workers=0, drop_last=True)
    state = {"it": iter(loader)}

    def per_image():
        try:
            x, _ = next(state["it"])
        except StopIteration:
            state["it"] = iter(loader)
            x, _ = next(state["it"])
        return len(x)

    # alternate short rounds, so a change in the load of shared cores hits both sides alike
    rounds = [(_timed(batched, seconds / 5), _timed(per_image, seconds / 5)) for _ in range(5)]
    return float(np.median([r[0] for r in rounds])), float(np.median([r[1] for r in rounds]))


def _cifar_images(cifar: Path | None) -> tuple[np.ndarray, str]:
    if cifar is None:
        rng = np.random.default_rng(0)
        return rng.integers(0, 256, (10_000, 3, 32, 32), dtype=np.uint8), "10,000 random 32x32 images"
    from .formats import ArraySplit, open_source

    split = open_source(cifar).splits["train"]
    if not isinstance(split, ArraySplit):
        from .memory import decode_split
        from .guard import BadFileLog

        split = decode_split(split.subset(np.arange(min(len(split), 10_000))), 32, 3, -1, BadFileLog(len(split), 1.0))
    return split.images[:10_000], str(cifar)


def run_bench_data(data: Path | None, cifar: Path | None, workers: int, seconds: float, out: Path | None = None) -> dict:
    """Measure, print the table, and save OUT/bench_data.json (default: the benchmark results folder)."""
    from ..console import new_table, print_table, say
    from ..provenance import save_benchmark

    folder = Path(data) if data else bench_photo_folder()
    workers = resolve_workers(workers)
    cores = max(1, workers)  # workers=0 decodes in this process: one core
    say(f"photos: {folder}; {workers} decode worker(s); {seconds:g} s per measurement")
    rates = {aug: loader_rate(folder, aug, workers, seconds) for aug in ("imagenet_paper", "rrc")}
    model_rate = resnet18_train_rate(seconds, threads=cores)
    cifar_images, cifar_name = _cifar_images(cifar)
    batched, per_image = cifar_augment_rates(cifar_images, seconds)

    table = new_table("measurement", "images/s", "per core", "vs baseline", right=("images/s", "per core", "vs baseline"),
                      title="input pipeline vs model (images/s, same process, same cores)")
    for aug, r in rates.items():
        table.add_row(f"decode+{aug} (224 crops, {workers} workers)", f"{r:.1f}", f"{r / cores:.1f}", f"{r / model_rate:.2f}x ResNet-18")
    table.add_row(f"ResNet-18 train step (batch 32, 224, {cores} thread{'s' if cores > 1 else ''})", f"{model_rate:.1f}", f"{model_rate / cores:.1f}", "baseline")
    table.add_row("CIFAR batched in-memory augmentation", f"{batched:,.0f}", f"{batched:,.0f}", f"{batched / per_image:.1f}x per-image")
    table.add_row("CIFAR per-image DataLoader (torchvision-style)", f"{per_image:,.0f}", f"{per_image:,.0f}", "baseline")
    print_table(table)
    command = "reslab bench data " + " ".join(
        [f"--data {shlex.quote(str(folder))}", f"--workers {workers}", f"--seconds {seconds:g}"]
        + ([f"--cifar {shlex.quote(str(cifar))}"] if cifar else [])
    )
    say(f"reproduce: {command}")
    result = {
        "command": command,
        "photos": str(folder),
        "workers": workers,
        "seconds_per_measurement": seconds,
        "loader_images_per_s": rates,
        "loader_images_per_s_per_core": {k: v / cores for k, v in rates.items()},
        "resnet18_train_images_per_s": model_rate,
        "loader_over_model": {k: v / model_rate for k, v in rates.items()},
        "cifar_source": cifar_name,
        "cifar_batched_images_per_s": batched,
        "cifar_per_image_images_per_s": per_image,
        "cifar_batched_over_per_image": batched / per_image,
    }
    say(f"saved {save_benchmark('bench_data', result, out)}", markup=False)
    return result
