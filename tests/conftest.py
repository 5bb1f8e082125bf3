"""Shared fixtures: the real datasets in ../shared/data, extracted once into a cache."""

from __future__ import annotations

import fcntl
import os
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RESLAB_SHARED", REPO.parent / "shared"))
SHARED_DATA = SHARED / "data"
CONFORMANCE = SHARED / "conformance"
CACHE = Path(os.environ.get("RESLAB_TEST_CACHE", Path.home() / ".cache" / "reslab-tests"))


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared data lives in ../shared beside the checkout)")
    return path


def _extracted(archive: Path) -> Path:
    """Extract `archive` once into the cache; keyed by size+mtime so a new archive re-extracts."""
    _need(archive)
    st = archive.stat()
    dest = CACHE / f"{archive.name.split('.')[0]}-{st.st_size}-{int(st.st_mtime)}"
    done = dest / ".extracted"
    if not done.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        # `make test` runs pytest processes side by side (tests/run_in_parallel.py): one extracts, the others wait.
        with open(CACHE / f"{dest.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not done.exists():
                dest.mkdir(parents=True, exist_ok=True)
                with tarfile.open(archive) as tar:
                    tar.extractall(dest, filter="data")
                done.touch()
    # archives hold one top folder, or the splits directly
    entries = [p for p in dest.iterdir() if not p.name.startswith(".")]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest


def pytest_configure(config):
    """pymilvus configures logging when it is imported (`logging.config.dictConfig`), which closes every
    logging handler the process holds. OpenVINO imports absl, whose handler closes its stream on close()
    unless that stream is the current sys.stderr: in a test process it is an earlier test's output
    capture, so the first Milvus test after an OpenVINO test closed pytest's capture ("I/O operation on
    closed file", then "lost sys.stderr"). Imported here, before any test, pymilvus finds no handler to close."""
    try:
        import pymilvus  # noqa: F401
    except ImportError:
        pass


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _need(SHARED_DATA)


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    return _need(CONFORMANCE)


@pytest.fixture(scope="session")
def cifar10_root() -> Path:
    """CIFAR-10 as JPEG folders: train/<class>/*.jpg and test/<class>/*.jpg."""
    return _extracted(SHARED_DATA / "cifar10-jpeg.tar.gz")


@pytest.fixture(scope="session")
def hymenoptera_root() -> Path:
    """Ants and bees photos: train/{ants,bees}/*.jpg and val/..."""
    return _extracted(SHARED_DATA / "hymenoptera.tar.gz")


@pytest.fixture(scope="session")
def fashion_mnist_dir() -> Path:
    return _need(SHARED_DATA / "fashion-mnist")


@pytest.fixture(scope="session", autouse=True)
def private_inference_cache(tmp_path_factory):
    """Exports and runtime decisions go to a fresh folder: tests never read or write the user's cache."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("reslab-cache")
        mp.setenv("RESLAB_CACHE", str(path))
        yield path
