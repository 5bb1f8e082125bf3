"""Run the reslab CLI with a pause at one named point, so that a test can send a signal exactly there.

    python -m tests.faults.pause_driver POINT N FOLDER -- reslab-arguments...

The N-th time a process of the run reaches POINT (counted in each process), it writes its pid to
FOLDER/paused and waits until FOLDER/go exists (two minutes at most), then goes on. Only the
first process to get there pauses. POINT is one of:

    data        a training DataLoader worker, before decoding an image
    step        the main process, at the start of an optimizer step (inside its critical region)
    eval        the main process, at the start of an evaluation
    checkpoint  the main process, inside a checkpoint write: the temporary file is written, not yet renamed
    decode      an embed decode worker, before decoding a group of files
    commit      the main process of embed, between a chunk's vector shard and its SQLite transaction
    store-commit  the main process of embed, before the N-th chunk is handed to a Milvus store
                (so exactly N-1 chunks are committed)
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import time
from pathlib import Path

PAUSE_LIMIT_S = 120


def pause_here(folder: Path) -> None:
    try:
        fd = os.open(folder / "paused", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return  # another process paused already
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    deadline = time.monotonic() + PAUSE_LIMIT_S
    while not (folder / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.01)


def on_nth_call(fn, n: int, folder: Path):
    calls = 0

    @functools.wraps(fn)  # same name and module: a pool can still pickle it by reference
    def wrapper(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == n:
            pause_here(folder)
        return fn(*args, **kwargs)

    return wrapper


def install(point: str, n: int, folder: Path) -> None:
    if point == "data":
        from reslab.data import loaders

        loaders._FileDataset.__getitem__ = on_nth_call(loaders._FileDataset.__getitem__, n, folder)
    elif point == "step":
        from reslab.train import engine

        engine.train_step = on_nth_call(engine.train_step, n, folder)
    elif point == "eval":
        from reslab.train import engine

        engine.evaluate = on_nth_call(engine.evaluate, n, folder)
    elif point == "checkpoint":
        import torch

        real_save = torch.save
        calls = 0

        def save_then_pause(obj, f, *args, **kwargs):
            nonlocal calls
            real_save(obj, f, *args, **kwargs)
            calls += 1
            if calls == n:
                f.flush()
                pause_here(folder)

        torch.save = save_then_pause
    elif point == "decode":
        from reslab.search import embed, walk

        wrapped = on_nth_call(walk.decode_many, n, folder)
        walk.decode_many = embed.decode_many = wrapped
    elif point == "commit":
        from reslab.search import store

        real_open = store.atomic_open
        calls = 0

        @contextlib.contextmanager
        def open_then_pause(*args, **kwargs):
            nonlocal calls
            with real_open(*args, **kwargs) as f:
                yield f
            calls += 1
            if calls == n:
                pause_here(folder)

        store.atomic_open = open_then_pause
    elif point == "store-commit":
        from reslab.search.milvus_store import MilvusStore

        MilvusStore.commit = on_nth_call(MilvusStore.commit, n, folder)
    else:
        raise SystemExit(f"unknown pause point {point!r}")


def main(argv: list[str]) -> None:
    point, n, folder, sep, *args = argv
    assert sep == "--", "usage: pause_driver POINT N FOLDER -- ARGS"
    install(point, int(n), Path(folder))
    from reslab.cli import main as reslab_main

    reslab_main(args)


if __name__ == "__main__":
    main(sys.argv[1:])
