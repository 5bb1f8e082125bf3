"""Dataset readers: image folders, CIFAR python batches, MNIST IDX files, CSV lists.

Each reader returns a `Source`: the class names and named splits ("train", "val", "test"). A split
holds either files to decode (`FileSplit`) or decoded pixels (`ArraySplit`, uint8 (N, C, H, W)).
Nothing here decodes images from files; that happens inside the guard (`reslab.data.guard`).
"""

from __future__ import annotations

import csv
import gzip
import math
import os
import pickle
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ReslabError
from ..imageio import is_image_file

SPLIT_NAMES = ("train", "val", "test")
MAX_CLASSES = 1_000_000  # integer labels above this are a mistake (ImageNet-21k has 21,841 classes)
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip


@dataclass(frozen=True)
class FileSplit:
    paths: tuple[Path, ...]
    labels: np.ndarray  # int64 (N,)

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, index: np.ndarray) -> "FileSplit":
        return FileSplit(tuple(self.paths[i] for i in index), self.labels[index])


@dataclass(frozen=True)
class ArraySplit:
    images: np.ndarray  # uint8 (N, C, H, W)
    labels: np.ndarray  # int64 (N,)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> "ArraySplit":
        return ArraySplit(self.images[index], self.labels[index])


Split = FileSplit | ArraySplit


@dataclass(frozen=True)
class Source:
    format: str  # folder | cifar | mnist | csv
    root: Path
    classes: list[str]
    splits: dict[str, Split]


def open_source(path: str | os.PathLike, format: str = "auto", labelled: bool = True) -> Source:
    """Read the dataset at `path` in `format` (auto-detected by default).

    labelled=False (self-supervised training): a folder's images are read wherever they sit under
    it, with or without class folders, all in one class; other formats keep their labels, unused.
    """
    if not str(path):
        raise ReslabError("no data path given; set data.path (or --data) to an image folder, CIFAR or MNIST folder, or CSV")
    path = Path(path).expanduser()
    if not path.exists():
        raise ReslabError(f"data path {path} does not exist; check data.path")
    fmt = detect_format(path) if format == "auto" else format
    readers = {"folder": read_folder, "cifar": read_cifar, "mnist": read_mnist, "csv": read_csv}
    if fmt not in readers:
        raise ReslabError(f"unknown data format '{fmt}'; use one of auto, {', '.join(readers)}")
    if fmt == "folder" and not labelled:
        return read_unlabelled_folder(path)
    return readers[fmt](path)


def detect_format(path: Path) -> str:
    if path.is_file():
        if path.suffix.lower() == ".csv":
            return "csv"
        raise ReslabError(f"{path} is a file but not a .csv list; give an image folder, a CIFAR or MNIST folder, or a CSV")
    if _cifar_dir(path) is not None:
        return "cifar"
    if _idx_file(path, "train-images-idx3-ubyte") is not None:
        return "mnist"
    return "folder"


# ---------------------------------------------------------------------------------------- folders


def read_folder(root: Path) -> Source:
    """`root/<class>/*.jpg`, or `root/{train,val,test}/<class>/*.jpg`; classes sorted as ImageFolder."""
    split_dirs = {name: root / name for name in SPLIT_NAMES if (root / name).is_dir()}
    if "train" not in split_dirs:
        if split_dirs:
            raise ReslabError(f"{root} has {', '.join(split_dirs)}/ but no train/ folder; add train/<class>/ images")
        split_dirs = {"train": root}
    classes = sorted(e.name for e in os.scandir(split_dirs["train"]) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise ReslabError(f"{split_dirs['train']} holds no class folders; expected <class>/<image> files inside it")
    splits = {name: _scan_split(d, classes) for name, d in split_dirs.items()}
    return Source("folder", root, classes, splits)


UNLABELLED = "(unlabelled)"  # the one class of an unlabelled folder


def read_unlabelled_folder(root: Path) -> Source:
    """Every image under `root` (or under each of its train/, val/, test/), at any depth, as one class."""
    split_dirs = {name: root / name for name in SPLIT_NAMES if (root / name).is_dir()}
    if split_dirs and "train" not in split_dirs:
        raise ReslabError(f"{root} has {', '.join(split_dirs)}/ but no train/ folder; add train/ images or point at the images' folder")
    split_dirs = split_dirs or {"train": root}
    splits = {}
    for name, d in split_dirs.items():
        files = _image_files(d)
        if not files:
            raise ReslabError(f"{d} holds no image files (.jpg, .png, ...) at any depth; add images or fix data.path")
        splits[name] = FileSplit(tuple(files), np.zeros(len(files), dtype=np.int64))
    return Source("folder", root, [UNLABELLED], splits)


def _image_files(folder: Path) -> list[Path]:
    """Image files under `folder` at any depth (hidden ones left out), in a stable sorted order."""
    return [
        Path(dirpath) / f
        for dirpath, dirs, filenames in sorted(os.walk(folder, followlinks=True))
        if not any(part.startswith(".") for part in Path(dirpath).relative_to(folder).parts)
        for f in sorted(filenames)
        if is_image_file(f) and not f.startswith(".")
    ]


def _scan_split(split_dir: Path, classes: list[str]) -> FileSplit:
    found = sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))
    extra = sorted(set(found) - set(classes))
    if extra:
        raise ReslabError(f"{split_dir} has class folder(s) {', '.join(extra[:5])} absent from train/; make the class folders match")
    paths, labels = [], []
    for label, name in enumerate(classes):
        class_dir = split_dir / name
        if not class_dir.is_dir():
            continue
        files = [Path(dirpath) / f for dirpath, filenames in _walk_once(class_dir) for f in sorted(filenames)
                 if is_image_file(f) and not f.startswith(".")]
        paths += files
        labels += [label] * len(files)
    if not paths:
        raise ReslabError(f"{split_dir} holds no image files (.jpg, .png, ...) in its class folders; add images or fix data.path")
    return FileSplit(tuple(paths), np.asarray(labels, dtype=np.int64))


def _walk_once(folder: Path) -> list[tuple[str, list[str]]]:
    """(folder, file names) under `folder`, sorted, following folder links but entering each real
    folder once: a link to a parent (a loop) would otherwise be walked until the path is too long."""
    seen, found = set(), []
    for dirpath, dirs, filenames in os.walk(folder, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs.sort()
        found.append((dirpath, filenames))
    return sorted(found)


# ------------------------------------------------------------------------------------------ CSV


def read_csv(csv_path: Path) -> Source:
    """Rows `path,label[,split]` (a header row is optional); paths relative to the CSV's folder.

    Labels are class names (sorted) or integers (used as given). Rows without a split are train.
    """
    try:
        with open(csv_path, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except UnicodeDecodeError as e:
        raise ReslabError(f"{csv_path} is not UTF-8 text (byte {e.start}); save the list as UTF-8 CSV") from None
    except csv.Error as e:
        raise ReslabError(f"{csv_path} is not a readable CSV ({e}); expected rows of path,label[,split]") from None
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["path", "label"]:
        rows = rows[1:]
    if not rows:
        raise ReslabError(f"{csv_path} lists no images; expected rows of path,label[,split]")
    for i, r in enumerate(rows):
        if len(r) < 2 or (len(r) > 2 and r[2].strip() not in SPLIT_NAMES + ("",)):
            raise ReslabError(f"{csv_path} row {i + 1} is {r!r}; expected path,label[,split] with split in train/val/test")
    names = [r[1].strip() for r in rows]
    if all(re.fullmatch(r"-?[0-9]+", n) for n in names):
        ints = [int(n) for n in names]
        if min(ints) < 0:
            raise ReslabError(f"{csv_path} has negative integer labels; labels must be 0..K-1 or class names")
        if max(ints) >= MAX_CLASSES:
            raise ReslabError(f"{csv_path} has integer label {max(ints)}; labels are class numbers 0..K-1 "
                              f"(K below {MAX_CLASSES:,}), or class names")
        classes = [str(i) for i in range(max(ints) + 1)]
        to_label = {n: int(n) for n in names}
    else:
        classes = sorted(set(names))
        to_label = {n: i for i, n in enumerate(classes)}
    grouped: dict[str, tuple[list, list]] = {}
    for r, name in zip(rows, names):
        split = (r[2].strip() if len(r) > 2 else "") or "train"
        p = Path(r[0].strip())
        grouped.setdefault(split, ([], []))
        grouped[split][0].append(p if p.is_absolute() else csv_path.parent / p)
        grouped[split][1].append(to_label[name])
    if "train" not in grouped:
        raise ReslabError(f"{csv_path} has no train rows; give rows without a split column or with split=train")
    splits = {s: FileSplit(tuple(p), np.asarray(y, dtype=np.int64)) for s, (p, y) in grouped.items()}
    return Source("csv", csv_path, classes, splits)


# ----------------------------------------------------------------------------------------- CIFAR


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """CIFAR batches are pickles; allow only what they contain (numpy arrays), never arbitrary code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
    }  # fmt: skip

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            d = _NumpyOnlyUnpickler(f, encoding="bytes").load()
    except Exception as e:  # noqa: BLE001 - any malformed pickle: one sentence, never a traceback
        raise ReslabError(f"{path} is not a CIFAR python batch ({type(e).__name__}: {e}); re-download cifar-10-python.tar.gz") from None
    if not isinstance(d, dict):
        raise ReslabError(f"{path} holds a {type(d).__name__}, not a CIFAR batch (a dict); re-download cifar-10-python.tar.gz")
    return {(k.decode("utf-8", "replace") if isinstance(k, bytes) else k): v for k, v in d.items()}


def _cifar_dir(path: Path) -> Path | None:
    for d in (path, path / "cifar-10-batches-py", path / "cifar-100-python"):
        if (d / "data_batch_1").is_file() or ((d / "train").is_file() and (d / "meta").is_file()):
            return d
    return None


def read_cifar(path: Path) -> Source:
    """CIFAR-10 (data_batch_1..5, test_batch, batches.meta) or CIFAR-100 (train, test, meta; fine labels)."""
    d = _cifar_dir(path)
    if d is None:
        raise ReslabError(f"{path} holds no CIFAR python batches (data_batch_1 or train+meta); extract cifar-10-python.tar.gz there")
    if (d / "data_batch_1").is_file():
        train_files = sorted(d.glob("data_batch_[0-9]*"), key=lambda p: int(p.name.rsplit("_", 1)[1]))
        test_file, meta_file, label_key, names_key = d / "test_batch", d / "batches.meta", "labels", "label_names"
    else:
        train_files = [d / "train"]
        test_file, meta_file, label_key, names_key = d / "test", d / "meta", "fine_labels", "fine_label_names"
    splits = {"train": _cifar_split(train_files, label_key)}
    if test_file.is_file():
        splits["test"] = _cifar_split([test_file], label_key)
    if meta_file.is_file():
        classes = [c.decode() if isinstance(c, bytes) else str(c) for c in _unpickle(meta_file)[names_key]]
    else:
        classes = [str(i) for i in range(int(splits["train"].labels.max()) + 1)]
    return Source("cifar", d, classes, splits)


def _cifar_split(files: list[Path], label_key: str) -> ArraySplit:
    images, labels = [], []
    for f in files:
        b = _unpickle(f)
        if "data" not in b or label_key not in b:
            raise ReslabError(f"{f} lacks 'data' or '{label_key}'; it is not a CIFAR batch of this kind")
        try:
            data = np.asarray(b["data"], dtype=np.uint8)
            y = np.asarray(b[label_key], dtype=np.int64)
        except (TypeError, ValueError, OverflowError) as e:
            raise ReslabError(f"{f} holds data or labels that are not numbers ({e}); re-download the CIFAR batches") from None
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or y.shape != (len(data),):
            raise ReslabError(f"{f} holds data of shape {data.shape} and {y.size} labels; a CIFAR batch has (N, 3072) "
                              "bytes and N labels: re-download it")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(y)
    return ArraySplit(np.concatenate(images), np.concatenate(labels))


# ----------------------------------------------------------------------------------------- MNIST


def _idx_file(d: Path, stem: str) -> Path | None:
    # accept the standard names and torchvision's/Keras's variants (idx3-ubyte vs idx3.ubyte)
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        for cand in (d / name, d / "raw" / name):
            if cand.is_file():
                return cand
    return None


def read_idx(path: Path) -> np.ndarray:
    """An IDX array (gzipped or raw): magic 0x0000_08_NN (unsigned bytes, NN dims), big-endian dims."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise ReslabError(f"cannot read IDX file {path}: {e}; re-download it") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ReslabError(f"{path} is not an IDX file of unsigned bytes (bad magic); re-download it")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise ReslabError(f"{path} ends inside its header ({len(data)} bytes for {ndim} dimensions); the file is truncated")
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != math.prod(dims):  # Python integers: a lying header cannot overflow into a match
        raise ReslabError(f"{path} holds {body.size} bytes but its header says {dims}; the file is truncated")
    return body.reshape(dims).copy()  # frombuffer is read-only; torch wants writable memory


def read_mnist(path: Path) -> Source:
    """MNIST / Fashion-MNIST IDX files; class names from classes.txt, else Fashion-MNIST's, else digits."""
    splits = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        img_file = _idx_file(path, f"{prefix}-images-idx3-ubyte")
        lbl_file = _idx_file(path, f"{prefix}-labels-idx1-ubyte")
        if img_file is None or lbl_file is None:
            if split == "train":
                raise ReslabError(f"{path} lacks train-images-idx3-ubyte[.gz] / train-labels-idx1-ubyte[.gz]")
            continue
        images, labels = read_idx(img_file), read_idx(lbl_file)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ReslabError(f"{img_file} ({images.shape}) and {lbl_file} ({labels.shape}) do not match")
        splits[split] = ArraySplit(np.ascontiguousarray(images[:, None]), labels.astype(np.int64))
    num_classes = int(max(s.labels.max() for s in splits.values())) + 1
    names_file = path / "classes.txt"
    if names_file.is_file():
        classes = [line.strip() for line in names_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    elif "fashion" in str(path.resolve()).lower() and num_classes == 10:
        classes = list(FASHION_MNIST_CLASSES)
    else:
        classes = [str(i) for i in range(num_classes)]
    return Source("mnist", path, classes, splits)


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded per-class hold-out: (train_index, holdout_index), each sorted."""
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        n = int(round(len(idx) * fraction))
        held.append(idx[:n])
        keep.append(idx[n:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def per_class_subset(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Seeded subset of at most `limit` samples per class, sorted."""
    rng = np.random.default_rng(seed + 1)  # not the hold-out's stream
    chosen = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        chosen.append(idx[rng.permutation(len(idx))[:limit]])
    return np.sort(np.concatenate(chosen))
