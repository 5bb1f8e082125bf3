import numpy as np
import pytest
from tests.data.conftest import write_cifar10, write_cifar100, write_folder, write_mnist

from reslab.data import DataConfig, build_data, open_source
from reslab.data.formats import detect_format, per_class_subset, stratified_holdout
from reslab.errors import ReslabError


def test_folder_with_splits_sorted_as_imagefolder(tmp_path):
    root = write_folder(tmp_path / "f", classes=("zebra", "Apple", "mango"), per_class=(3, 2, 4), splits=("train", "val"))
    src = open_source(root)
    assert src.format == "folder"
    assert src.classes == ["Apple", "mango", "zebra"]  # sorted() as torchvision: uppercase first
    train = src.splits["train"]
    assert len(train) == 9 and set(src.splits) == {"train", "val"}
    assert np.bincount(train.labels).tolist() == [2, 4, 3]
    assert all(p.parent.name == src.classes[y] for p, y in zip(train.paths, train.labels))


def test_flat_folder_is_train_and_needs_a_holdout_to_evaluate(tmp_path):
    root = write_folder(tmp_path / "f", per_class=(10, 10), splits=("",))
    data = build_data(DataConfig(path=str(root), val_fraction=0.2), batch_size=4, seed=0)
    assert data.eval_split == "holdout" and data.train_size == 16 and data.eval_size == 4
    data = build_data(DataConfig(path=str(root)), batch_size=4, seed=0)
    assert data.eval is None and data.eval_split == "none"


def test_cifar10_python_batches(tmp_path):
    batches = write_cifar10(tmp_path / "cifar-10-batches-py")
    src = open_source(tmp_path)  # the parent folder is found too
    assert src.format == "cifar" and src.classes[0] == "airplane" and len(src.classes) == 10
    train, test = src.splits["train"], src.splits["test"]
    assert train.images.shape == (40, 3, 32, 32) and test.images.shape == (8, 3, 32, 32)
    data, labels = batches["data_batch_2"]
    # row 3 of batch 2: the 3072 bytes are R plane, G plane, B plane of a 32x32 image
    np.testing.assert_array_equal(train.images[8 + 3], data[3].reshape(3, 32, 32))
    assert train.labels[8 + 3] == labels[3]


def test_cifar100_fine_labels(tmp_path):
    arrays = write_cifar100(tmp_path / "cifar-100-python")
    src = open_source(tmp_path / "cifar-100-python", "cifar")
    assert len(src.classes) == 100 and src.classes[7] == "c07"
    assert src.splits["train"].labels.tolist() == arrays["train"][1]
    np.testing.assert_array_equal(src.splits["test"].images.reshape(6, -1), arrays["test"][0])


def test_cifar_pickle_with_code_is_refused(tmp_path):
    d = tmp_path / "c"
    write_cifar10(d)
    import os
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with open(d / "data_batch_1", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f)
    with pytest.raises(ReslabError, match="not a CIFAR python batch"):
        open_source(d)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx(tmp_path, gz):
    arrays = write_mnist(tmp_path / "mnist", gz=gz)
    src = open_source(tmp_path / "mnist")
    assert src.format == "mnist" and src.classes == [str(i) for i in range(10)]
    np.testing.assert_array_equal(src.splits["train"].images[:, 0], arrays["train"][0])
    np.testing.assert_array_equal(src.splits["test"].labels, arrays["t10k"][1])


def test_truncated_idx_is_a_clear_error(tmp_path):
    write_mnist(tmp_path / "m", gz=False)
    f = tmp_path / "m" / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(ReslabError, match="truncated"):
        open_source(tmp_path / "m")


def test_csv_relative_paths_names_and_splits(tmp_path):
    root = write_folder(tmp_path / "imgs", per_class=(3, 3), splits=("",))
    lines = ["path,label,split"]
    for p in sorted(root.rglob("*.png")):
        split = "val" if p.name == "000.png" else "train"
        lines.append(f"{p.relative_to(tmp_path)},{p.parent.name},{split}")
    (tmp_path / "list.csv").write_text("\n".join(lines) + "\n")
    src = open_source(tmp_path / "list.csv")
    assert src.format == "csv" and src.classes == ["cat", "dog"]
    assert len(src.splits["train"]) == 4 and len(src.splits["val"]) == 2
    assert all(p.is_file() for p in src.splits["train"].paths)
    data = build_data(DataConfig(path=str(tmp_path / "list.csv")), batch_size=2, seed=0)
    assert data.eval_split == "val" and data.eval_size == 2


def test_detect_and_missing_path_errors(tmp_path):
    with pytest.raises(ReslabError, match="does not exist"):
        open_source(tmp_path / "nope")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ReslabError, match="not a .csv"):
        detect_format(tmp_path / "x.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReslabError, match="no class folders"):
        open_source(tmp_path / "empty")


def test_stratified_holdout_and_subset_are_seeded_and_per_class():
    labels = np.repeat(np.arange(4), 50)
    keep, held = stratified_holdout(labels, 0.1, seed=3)
    assert np.bincount(labels[held]).tolist() == [5, 5, 5, 5]
    assert len(np.intersect1d(keep, held)) == 0 and len(keep) + len(held) == 200
    assert np.array_equal(held, stratified_holdout(labels, 0.1, seed=3)[1])
    assert not np.array_equal(held, stratified_holdout(labels, 0.1, seed=4)[1])
    sub = per_class_subset(labels, 7, seed=0)
    assert np.bincount(labels[sub]).tolist() == [7, 7, 7, 7]


def test_grayscale_data_for_3_and_1_channel_models(tmp_path):
    write_mnist(tmp_path / "m")
    d3 = build_data(DataConfig(path=str(tmp_path / "m"), image_size=28, augment="none", channels=3), 4, seed=0)
    x, _ = next(d3.train.batches(0))
    assert x.shape == (4, 3, 28, 28) and len(d3.mean) == 3
    assert (x[:, 0] == x[:, 1]).all() and (x[:, 1] == x[:, 2]).all()
    d1 = build_data(DataConfig(path=str(tmp_path / "m"), image_size=32, augment="none", channels=1), 4, seed=0)
    x, _ = next(d1.train.batches(0))
    assert x.shape == (4, 1, 32, 32) and d1.num_channels == 1
    # a colour folder for a grey model: decoded as luminance
    root = write_folder(tmp_path / "f", per_class=(4, 4), splits=("train",))
    dg = build_data(DataConfig(path=str(root), channels=1), 4, seed=0)
    assert next(dg.train.batches(0))[0].shape == (4, 1, 32, 32)


@pytest.mark.data
def test_real_cifar10_jpeg_folder(cifar10_root):
    src = open_source(cifar10_root)
    assert src.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert len(src.splits["train"]) == 50_000 and len(src.splits["test"]) == 10_000
    assert np.bincount(src.splits["test"].labels).tolist() == [1000] * 10


@pytest.mark.data
def test_real_fashion_mnist(fashion_mnist_dir):
    data = build_data(DataConfig(path=str(fashion_mnist_dir), image_size=28, channels=1), 256, seed=0)
    assert data.train_size == 60_000 and data.eval_size == 10_000 and data.classes[0] == "T-shirt/top"
    # the published train statistics of Fashion-MNIST
    assert data.mean[0] == pytest.approx(0.2860, abs=1e-3) and data.std[0] == pytest.approx(0.3530, abs=1e-3)
