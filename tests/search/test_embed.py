"""The indexing pipeline: search quality, incremental updates, resume after a crash, bad files, mismatches."""

from __future__ import annotations

import os
import sys
from pathlib import Path
import shutil

import numpy as np
import pytest
from PIL import Image, ImageOps

from reslab.errors import ReslabError
from reslab.search.embed import EmbedOptions, build_index
from reslab.search.index import SearchIndex
from tests.process_tools import kill_group, processes_in_group

pytestmark = pytest.mark.data

FAST = EmbedOptions(workers=0, chunk_size=8, batch_size=4, progress=False)


def vectors_by_path(index_dir) -> dict[str, np.ndarray]:
    with SearchIndex.open(index_dir) as idx:
        return {it.path: idx.vector(it.id) for it in idx.items()}


def test_flipped_resized_copy_finds_its_original(photos, lite0, tmp_path):
    report = build_index(photos, tmp_path / "index", lite0, EmbedOptions(workers=2, batch_size=16, progress=False))
    assert report.count == 40 and report.embedded == 40 and not report.bad
    with SearchIndex.open(tmp_path / "index") as idx:
        assert idx.manifest["model"] == "efficientnet_lite0" and idx.manifest["dim"] == 1280
        for original in [sorted((photos / "ants").iterdir())[3], sorted((photos / "bees").iterdir())[7]]:
            with Image.open(original) as im:
                copy = ImageOps.mirror(im.convert("RGB")).resize((im.width * 2 // 3, im.height * 2 // 3), Image.BILINEAR)
            hits = idx.search_image(copy, k=5)
            assert hits[0].path == str(original)
            assert hits[0].score > 0.8 and hits[0].score > hits[1].score
            assert hits[0].label == original.parent.name
        # an item's own neighbours exclude itself; ids resolve to paths
        item = idx.item(1)
        assert all(h.id != 1 for h in idx.search_item(1, k=5))
        assert idx.classify(item.path, top_k=3)[0][1] > 0


def test_incremental_reembeds_only_new_and_changed_files(photos, thumb, tmp_path):
    out = tmp_path / "index"
    first = build_index(photos, out, thumb, FAST)
    assert (first.count, first.embedded, thumb.embedded) == (40, 40, 40)
    before = vectors_by_path(out)
    with SearchIndex.open(out) as idx:
        ids_before = {it.path: it.id for it in idx.items()}

    ants = sorted((photos / "ants").iterdir())
    added = photos / "ants" / "new_ant.jpg"
    ImageOps.mirror(Image.open(ants[0])).save(added)  # new file
    changed = ants[1]
    shutil.copy(ants[2], changed)  # new content under an old name
    deleted = ants[3]
    deleted.unlink()
    touched = ants[4]
    os.utime(touched, (1e9, 1e9))  # new mtime, same bytes: hashed, not re-embedded

    thumb.embedded = 0
    second = build_index(photos, out, thumb, FAST)
    assert thumb.embedded == 2  # the added and the changed file, nothing else
    assert (second.embedded, second.removed, second.count) == (2, 1, 40)
    assert second.unchanged == 38
    after = vectors_by_path(out)
    assert str(deleted) not in after and str(added) in after
    assert not np.allclose(after[str(changed)], before[str(changed)])
    np.testing.assert_allclose(after[str(changed)], before[str(ants[2])], atol=1e-6)
    for path in set(before) - {str(changed), str(deleted)}:
        np.testing.assert_array_equal(after[path], before[path])
    with SearchIndex.open(out) as idx:
        assert len(idx) == 40
        assert {it.path: it.id for it in idx.items()}[str(changed)] == ids_before[str(changed)]  # ids are stable

    thumb.embedded = 0
    third = build_index(photos, out, thumb, FAST)
    assert (thumb.embedded, third.unchanged, third.count) == (0, 40, 40)


class Killed(Exception):
    pass


def test_killed_run_resumes_without_redoing_work(photos, thumb, tmp_path):
    out = tmp_path / "index"

    def die_after_two_chunks(n):
        if n == 2:
            raise Killed

    with pytest.raises(Killed):
        build_index(photos, out, thumb, FAST, on_commit=die_after_two_chunks)
    assert thumb.embedded <= 16 + FAST.batch_size  # stopped right after the second chunk
    with pytest.raises(ReslabError, match="incomplete"):
        SearchIndex.open(out)  # no FAISS index yet: refused with a clear message, not a crash

    thumb.embedded = 0
    resumed = build_index(photos, out, thumb, FAST)
    assert resumed.unchanged == 16 and resumed.embedded == 24 and thumb.embedded == 24
    assert resumed.count == 40
    with SearchIndex.open(out) as idx:
        paths = [it.path for it in idx.items()]
        assert len(paths) == len(set(paths)) == 40
    fresh = tmp_path / "fresh"
    build_index(photos, fresh, thumb, FAST)
    a, b = vectors_by_path(out), vectors_by_path(fresh)
    assert a.keys() == b.keys()
    for p in a:
        np.testing.assert_array_equal(a[p], b[p])


def test_killed_process_leaves_no_orphans_and_resumes(photos, thumb, tmp_path):
    """A kill between writing a shard file and committing it: the orphan file is dropped on resume."""
    out = tmp_path / "index"
    with pytest.raises(Killed):
        build_index(photos, out, thumb, FAST, on_commit=lambda n: _raise(Killed) if n == 1 else None)
    orphan = out / "vectors" / "999999.npy"
    np.save(orphan, np.zeros((8, thumb.dim), np.float32))
    build_index(photos, out, thumb, FAST)
    assert not orphan.exists()
    with SearchIndex.open(out) as idx:
        assert len(idx) == 40


def _raise(exc):
    raise exc


def test_bad_files_are_reported_skipped_and_not_retried(photos, thumb, tmp_path):
    (photos / "ants" / "empty.jpg").write_bytes(b"")
    good = sorted((photos / "bees").iterdir())[0].read_bytes()
    (photos / "bees" / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (photos / "bees" / "text.png").write_text("not an image")
    out = tmp_path / "index"
    report = build_index(photos, out, thumb, EmbedOptions(workers=2, chunk_size=8, batch_size=4, progress=False))
    bad = dict(report.bad)
    assert set(bad) == {str(photos / "ants" / "empty.jpg"), str(photos / "bees" / "truncated.jpg"), str(photos / "bees" / "text.png")}
    assert "empty" in bad[str(photos / "ants" / "empty.jpg")]
    assert report.count == 40

    thumb.embedded = 0
    again = build_index(photos, out, thumb, FAST)
    assert again.known_bad == 3 and not again.bad and thumb.embedded == 0

    shutil.copy(sorted((photos / "bees").iterdir())[0], photos / "bees" / "truncated.jpg")  # the user fixes it
    fixed = build_index(photos, out, thumb, FAST)
    assert fixed.embedded == 1 and fixed.known_bad == 2 and fixed.count == 41


def test_other_embedder_is_refused_naming_both(photos, thumb, lite0, tmp_path):
    out = tmp_path / "index"
    build_index(photos, out, thumb, FAST)
    with pytest.raises(ReslabError, match=r"built with thumb.*not cnn efficientnet_lite0"):
        build_index(photos, out, lite0, FAST)
    with SearchIndex.open(out) as idx:
        with pytest.raises(ReslabError, match=r"built with thumb.*model 'resnet50'"):
            idx.check_query_options(model="resnet50")
        with pytest.raises(ReslabError, match=r"method 'hog' \(the index uses 'thumb'\)"):
            idx.check_query_options(method="hog")
        idx.check_query_options(method="thumb")  # agreeing options are fine
    with pytest.raises(ReslabError, match="not .*other"):
        build_index(photos.parent, out, thumb, FAST)  # another folder into the same index


def test_open_refuses_what_is_not_an_index(tmp_path):
    with pytest.raises(ReslabError, match="no index"):
        SearchIndex.open(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReslabError, match="not a reslab index"):
        SearchIndex.open(tmp_path / "empty")


@pytest.mark.slow
def test_sigkilled_cli_run_resumes(photos, tmp_path):
    """A real `kill -9` of `reslab embed` after some chunks committed; the rerun finishes the rest."""
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    out = tmp_path / "index"
    cmd = [sys.executable, "-m", "reslab", "embed", str(photos), "--out", str(out), "--chunk-size", "4", "--batch-size", "4", "--workers", "1"]
    # a session of its own: its process group is exactly this run and its decode workers
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    committed = 0
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if (out / "items.sqlite").exists():
            try:
                with sqlite3.connect(out / "items.sqlite", timeout=1) as db:
                    committed = db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
            except sqlite3.OperationalError:
                committed = 0
            if committed >= 8:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 8 <= committed < 40, "the run should be killed midway"
    # the decode workers die with it (issue 12, defect 4: they were reparented to PID 1 and stayed)
    left = processes_in_group(proc.pid, wait=10)
    kill_group(proc.pid)
    assert left == [], f"processes left behind: {left}"
    result = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    import json

    report = json.loads(result.stdout)
    assert report["count"] == 40
    assert report["unchanged"] >= committed  # committed work is not redone
    assert report["embedded"] + report["unchanged"] == 40
    with SearchIndex.open(out) as idx:
        paths = [it.path for it in idx.items()]
        assert len(paths) == len(set(paths)) == 40


def test_mass_deletion_compacts_the_vector_shards(photos, thumb, tmp_path):
    out = tmp_path / "index"
    build_index(photos, out, thumb, FAST)
    before = vectors_by_path(out)
    assert len(list((out / "vectors").iterdir())) == 5  # 40 items in chunks of 8
    doomed = sorted(photos.rglob("*.jpg"))[:30]
    for p in doomed:
        p.unlink()
    report = build_index(photos, out, thumb, FAST)
    assert (report.removed, report.count) == (30, 10)
    after = vectors_by_path(out)
    assert set(after) == set(before) - {str(p) for p in doomed}
    for path, v in after.items():
        np.testing.assert_array_equal(v, before[path])
    assert len(list((out / "vectors").iterdir())) == 1  # dead rows dominated: rewritten into one shard


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file systems refuse names that are not UTF-8")
def test_names_that_are_not_utf8_or_hold_a_newline_are_indexed_found_and_served(tmp_path):
    # issue 12, defect 3: `reslab embed` crashed (UnicodeEncodeError into SQLite) on such a name
    from fastapi.testclient import TestClient

    from reslab.embeddings import make_embedder
    from reslab.web.app import create_app

    folder = tmp_path / "photos" / "caf\udce9"  # a folder (label) that is not UTF-8 either
    folder.mkdir(parents=True)
    names = ["plain.png", "latin1-caf\udce9.png", "\udcff\udcfe.png", "new\nline.png", "[red]markup.png"]
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / name, format="PNG")
    index = tmp_path / "index"
    report = build_index(tmp_path / "photos", index, make_embedder("hist"), FAST)
    assert report.count == 5 and not report.bad
    with SearchIndex.open(index) as idx:
        stored = {Path(it.path).name: it for it in idx.items()}
        assert set(stored) == set(names)  # exactly the names on disk
        assert all(it.label == "caf\udce9" for it in stored.values())
        assert idx.item_by_path(folder / "\udcff\udcfe.png").id == stored["\udcff\udcfe.png"].id
    again = build_index(tmp_path / "photos", index, make_embedder("hist"), FAST)  # found unchanged, not re-embedded
    assert again.unchanged == 5 and again.embedded == 0 and again.count == 5
    with TestClient(create_app(index)) as client:
        listed = client.get("/api/items").json()["items"]
        assert sorted(it["name"] for it in listed) == sorted(["plain.png", "latin1-caf\\xe9.png", "\\xff\\xfe.png",
                                                              "new\\nline.png", "[red]markup.png"])
        for it in listed:
            served = client.get(f"/api/image/{it['id']}")
            assert served.status_code == 200 and served.content[:4] == b"\x89PNG"
            assert client.get(f"/api/items/{it['id']}/similar").status_code == 200


def test_a_second_writer_of_an_index_is_refused(photos, thumb, tmp_path):
    from reslab.processes import FolderLock

    build_index(photos, tmp_path / "index", thumb, FAST)
    with FolderLock(tmp_path / "index", "the index"):  # as a running `reslab embed` holds it
        with pytest.raises(ReslabError, match="is in use by process"):
            build_index(photos, tmp_path / "index", thumb, FAST)
    assert build_index(photos, tmp_path / "index", thumb, FAST).unchanged == 40


@pytest.mark.parametrize("decode_threads", [1, 2])
def test_decoding_in_threads_gives_the_index_of_decoding_between_batches(photos, thumb, tmp_path, monkeypatch, decode_threads):
    """--workers 0 decodes in threads of this process, ahead of the network: same vectors, same order, same bad files."""
    from reslab.search import embed as embed_module

    (photos / "ants" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    options = EmbedOptions(workers=0, chunk_size=8, batch_size=4, progress=False)
    monkeypatch.setattr(embed_module, "DECODE_THREADS", 0)
    serial = build_index(photos, tmp_path / "serial", thumb, options)
    monkeypatch.setattr(embed_module, "DECODE_THREADS", decode_threads)
    threaded = build_index(photos, tmp_path / "threaded", thumb, options)
    assert (threaded.count, threaded.embedded) == (serial.count, serial.embedded) == (40, 40)
    assert [p for p, _ in threaded.bad] == [p for p, _ in serial.bad] == [str(photos / "ants" / "broken.jpg")]
    with SearchIndex.open(tmp_path / "serial") as a, SearchIndex.open(tmp_path / "threaded") as b:
        assert [(it.id, it.path) for it in a.items()] == [(it.id, it.path) for it in b.items()]
    expected, got = vectors_by_path(tmp_path / "serial"), vectors_by_path(tmp_path / "threaded")
    assert all(np.array_equal(expected[p], got[p]) for p in expected)
