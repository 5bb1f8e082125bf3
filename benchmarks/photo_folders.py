"""Labelled photo folders made from ../shared/data, for the fine-tuning and retrieval measurements.

Nothing here is a folder of a user's own photos, and no offline source has five classes of
full-size photos; each folder says exactly what it is:

  hymenoptera        ants/bees photos (~500x375 JPEG), 2 classes, the archive's own train/val
                     (244 / 153 images): real photos, but 2 classes.
  hymenoptera-40-20  the same photos, 40 train / 20 val per class (seeded subset), 2 classes.
  cifar5-40-20       CIFAR-10 photos of airplane, automobile, bird, cat, deer: 40 train (from
                     CIFAR's train) / 20 val (from its test) per class; real photos, but 32x32
                     thumbnails (the network sees them upscaled to 224).
  cifar5b-40-20      the same from CIFAR's other five classes (dog, frog, horse, ship, truck).
  fashion5-40-20     Fashion-MNIST T-shirt/top, trouser, bag, sneaker, dress: 40 / 20 per class;
                     28x28 grey product photos.
  flat variants      `<name>-flat`: the same 60 images per class in one `<class>/` level, without
                     train/ and val/, so `reslab train finetune` makes its own split.
  retrieval folders  `ret-cifar5`, `ret-cifar5b`, `ret-fashion5`, `ret-fashion5b`: 75 images per
                     class, one `<class>/` level, for `reslab embed` + `eval-retrieval`.

    python benchmarks/photo_folders.py /tmp/photo-folders
"""

from __future__ import annotations

import gzip
import io
import sys
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def _members(archive: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive) as tar:
        return {m.name: m for m in tar.getmembers() if m.isfile() and m.name.lower().endswith((".jpg", ".jpeg", ".png"))}


def _by_class(names, split: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for n in sorted(names):
        parts = Path(n).parts
        if split in parts:
            i = parts.index(split)
            out.setdefault(parts[i + 1], []).append(n)
    return out


def _write(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)


def tar_folder(archive: Path, out: Path, classes: list[str] | None, train_split: str, val_split: str,
               n_train: int | None, n_val: int | None, seed: int, flat: bool = False) -> None:
    rng = np.random.default_rng(seed)
    with tarfile.open(archive) as tar:
        names = list(_members(archive))
        for split, src, n in (("train", train_split, n_train), ("val", val_split, n_val)):
            groups = _by_class(names, src)
            for c in classes or sorted(groups):
                files = groups[c]
                pick = files if n is None else [files[i] for i in sorted(rng.choice(len(files), n, replace=False))]
                for name in pick:
                    sub = Path(c) if flat else Path(split) / c
                    _write(out / sub / f"{src}-{Path(name).name}", tar.extractfile(name).read())


def fashion_folder(out: Path, classes: list[int], n_train: int, n_val: int, seed: int, flat: bool = False) -> None:
    def idx(stem):
        with gzip.open(SHARED / "fashion-mnist" / f"{stem}.gz") as f:
            data = f.read()
        return np.frombuffer(data, np.uint8, offset=16 if "images" in stem else 8)

    rng = np.random.default_rng(seed)
    for split, stem, n in (("train", "train", n_train), ("val", "t10k", n_val)):
        images = idx(f"{stem}-images-idx3-ubyte").reshape(-1, 28, 28)
        labels = idx(f"{stem}-labels-idx1-ubyte")
        for c in classes:
            name = FASHION[c].replace("/", "-")
            rows = np.flatnonzero(labels == c)
            for r in sorted(rng.choice(rows, n, replace=False)):
                buf = io.BytesIO()
                Image.fromarray(images[r]).save(buf, "PNG")
                sub = Path(name) if flat else Path(split) / name
                _write(out / sub / f"{stem}-{r:05d}.png", buf.getvalue())


def main(root: Path) -> None:
    hym, cifar = SHARED / "hymenoptera.tar.gz", SHARED / "cifar10-jpeg.tar.gz"
    c5, c5b = ["airplane", "automobile", "bird", "cat", "deer"], ["dog", "frog", "horse", "ship", "truck"]
    f5, f5b = [0, 1, 8, 7, 3], [2, 4, 5, 6, 9]
    jobs = {
        "hymenoptera": lambda o: tar_folder(hym, o, None, "train", "val", None, None, 0),
        "hymenoptera-40-20": lambda o: tar_folder(hym, o, None, "train", "val", 40, 20, 0),
        "hymenoptera-40-20-flat": lambda o: tar_folder(hym, o, None, "train", "val", 40, 20, 0, flat=True),
        "cifar5-40-20": lambda o: tar_folder(cifar, o, c5, "train", "test", 40, 20, 0),
        "cifar5-40-20-flat": lambda o: tar_folder(cifar, o, c5, "train", "test", 40, 20, 0, flat=True),
        "cifar5b-40-20": lambda o: tar_folder(cifar, o, c5b, "train", "test", 40, 20, 1),
        "fashion5-40-20": lambda o: fashion_folder(o, f5, 40, 20, 0),
        "fashion5-40-20-flat": lambda o: fashion_folder(o, f5, 40, 20, 0, flat=True),
        "ret-cifar5": lambda o: tar_folder(cifar, o, c5, "train", "test", 50, 25, 2, flat=True),
        "ret-cifar5b": lambda o: tar_folder(cifar, o, c5b, "train", "test", 50, 25, 3, flat=True),
        "ret-fashion5": lambda o: fashion_folder(o, f5, 50, 25, 2, flat=True),
        "ret-fashion5b": lambda o: fashion_folder(o, f5b, 50, 25, 3, flat=True),
    }
    for name, make in jobs.items():
        out = root / name
        if out.exists():
            print(f"{out} exists, kept")
            continue
        make(out)
        print(f"wrote {out}: {sum(1 for p in out.rglob('*') if p.is_file())} images")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/photo-folders"))
