"""Milvus stores across processes: `kill -9` of `reslab embed` into Milvus Lite, and torchrun ranks
writing straight into one Milvus server (the Milvus Lite engine run as a standalone gRPC server)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from reslab.processes import die_with_parent
from reslab.search.embed import EmbedOptions, build_index
from reslab.embeddings import make_embedder
from reslab.search.index import SearchIndex

from tests.faults import cli_runs

from .test_sharding import free_port

pytest.importorskip("milvus_lite", reason="the Milvus store tests need milvus-lite (pip install 'reslab[milvus]')")
pytestmark = [pytest.mark.slow, pytest.mark.data]


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains `text` (this test's own temporary paths)."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if text.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.append(int(pid))
            except OSError:
                continue
    return found


def test_sigkilled_embed_into_milvus_lite_resumes(photos, tmp_path):
    db, out = tmp_path / "store.db", tmp_path / "photos.index"
    args = ["embed", str(photos), "--out", str(out), "--store", f"milvus://{db}",
            "--chunk-size", "4", "--batch-size", "4", "--workers", "1"]  # fmt: skip
    # kill -9 while paused before the 4th chunk's commit: 3 chunks are in Milvus, the rest is not,
    # whatever the machine's load (a kill after a fixed sleep landed after the end on a loaded
    # machine); the decode worker must die with the main process
    killed = cli_runs.run(args, tmp_path / "pause", pause=("store-commit", 4), send="SIGKILL")
    assert killed.returncode == -signal.SIGKILL and killed.left_behind == []
    assert processes_mentioning(str(tmp_path)) == []  # Milvus Lite runs inside the process: nothing is orphaned

    cmd = [sys.executable, "-m", "reslab", *args]
    result = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "fork_posix" not in result.stderr, "gRPC's fork notices reach the user's terminal"
    report = json.loads(result.stdout)
    assert report["count"] == 40 and report["embedded"] + report["unchanged"] == 40
    assert report["unchanged"] == 12, "the 3 chunks committed before the kill are kept, the rest is embedded"
    with SearchIndex.open(out) as idx:
        items = list(idx.items())
        assert len({it.path for it in items}) == len({it.id for it in items}) == 40
    assert processes_mentioning(str(tmp_path)) == []


@contextmanager
def milvus_server(data_dir: Path):
    """A Milvus Lite engine behind a gRPC port in its own process: a stand-in for a Milvus server."""
    port = free_port()
    server = Path(sys.executable).with_name("milvus-lite")
    # one worker thread: Milvus Lite's engine takes one write at a time (a real server takes many)
    # it dies with this test process even if that is killed: no server is ever left behind
    proc = subprocess.Popen([str(server), "server", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", str(port), "--max-workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=partial(die_with_parent, os.getpid()))  # fmt: skip
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None, "the Milvus Lite server did not start"
            time.sleep(0.1)
        yield f"milvus://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_torchrun_ranks_write_straight_into_one_milvus_server(hymenoptera_root, tmp_path, photo_copier):
    photos = photo_copier(hymenoptera_root, tmp_path / "photos", 6, split="val")
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with milvus_server(tmp_path / "server-data") as store:
        def sharded_embed():
            cmd = [str(torchrun), "--nproc-per-node", "2", "--master-port", str(free_port()), "-m", "reslab", "embed", str(photos),
                   "--out", str(tmp_path / "photos.index"), "--store", store, "--method", "hist", "--workers", "0", "--json"]  # fmt: skip
            result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
            assert result.returncode == 0, result.stderr[-3000:]
            return json.loads(result.stdout[result.stdout.index("{") :])

        first = sharded_embed()
        assert (first["count"], first["embedded"]) == (12, 12)
        assert not (tmp_path / "photos.index" / "shards").exists()  # no per-rank shards, no merge step

        single = tmp_path / "single"
        build_index(photos, single, make_embedder("hist"), EmbedOptions(workers=0, progress=False))
        with SearchIndex.open(tmp_path / "photos.index") as shared, SearchIndex.open(single) as one:
            items = list(shared.items())
            assert len({it.id for it in items}) == 12 and {it.path for it in items} == {it.path for it in one.items()}
            for it in one.items():
                np.testing.assert_allclose(shared.vector(shared.item_by_path(it.path).id), one.vector(it.id), atol=1e-6)
            assert shared.manifest["status"] == "complete" and shared.manifest["writers"] == 2

        gone = sorted((photos / "ants").iterdir())[0]
        gone.unlink()
        (photos / "bees" / "copy.jpg").write_bytes(sorted((photos / "bees").iterdir())[0].read_bytes())
        second = sharded_embed()  # incremental: each rank drops and adds only within its own share
        assert (second["count"], second["embedded"], second["removed"], second["unchanged"]) == (12, 1, 1, 11)
        with SearchIndex.open(tmp_path / "photos.index") as shared:
            ids = [it.id for it in shared.items()]
            assert len(set(ids)) == 12 and max(ids) > 12  # the new file got a fresh id, none reused
            assert shared.item_by_path(str(gone)) is None
    assert processes_mentioning(str(tmp_path)) == []  # the server, the ranks: all gone
