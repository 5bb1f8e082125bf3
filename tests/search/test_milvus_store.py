"""The Milvus store on the real Milvus Lite engine: the local store's guarantees, identical results, copies.

One Milvus Lite file per module (each test its own collections in it), held open by a fixture so
that the engine starts once.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PIL import Image, ImageOps

from reslab.errors import ReslabError
from reslab.search.copy import copy_index
from reslab.search.duplicates import find_duplicates
from reslab.search.embed import EmbedOptions, build_index
from reslab.search.index import SearchIndex
from reslab.search.milvus_store import MilvusStore
from reslab.search.names import from_text, name_key, to_text
from reslab.search.retrieval import evaluate_index
from reslab.search.stores import IndexMissing, collection_name, open_store, parse_store

from .conftest import ThumbEmbedder

pytest.importorskip("milvus_lite", reason="the Milvus store tests need milvus-lite (pip install 'reslab[milvus]')")

FAST = EmbedOptions(workers=0, chunk_size=8, batch_size=4, progress=False)


@pytest.fixture(scope="module")
def milvus_uri(tmp_path_factory):
    """milvus:///.../test.db, its engine kept running for the module (each store open/close would restart it)."""
    from reslab.search.milvus_connect import connect, release

    address = parse_store(f"milvus://{tmp_path_factory.mktemp('milvus') / 'test.db'}")
    client = connect(address, create=True)
    yield address.public_uri()
    client.close()
    release(address)


def snapshot(index, store=None) -> tuple[dict, dict]:
    """{id: Item} and {id: vector} of a whole index."""
    with SearchIndex.open(index, store) as idx:
        items, vectors = {}, {}
        for block, vecs in idx.store.iter_items(16):
            for it, v in zip(block, vecs):
                items[it.id], vectors[it.id] = it, v
        return items, vectors


# -- addresses and names --------------------------------------------------------------------------
def test_store_addresses_parse_or_fail_clearly(tmp_path, monkeypatch):
    monkeypatch.delenv("MILVUS_TOKEN", raising=False)
    assert parse_store(None) is None and parse_store("local") is None
    lite = parse_store(f"milvus://{tmp_path}/photos.db")
    assert lite.is_lite and lite.uri == str(tmp_path / "photos.db") and lite.public_uri() == f"milvus://{tmp_path}/photos.db"
    server = parse_store("milvus://root:secret@search.example:19531")
    assert not server.is_lite and server.uri == "http://search.example:19531" and server.token == "root:secret"
    assert "secret" not in server.public_uri()
    assert parse_store("https://cluster.example").uri == "https://cluster.example:19530"
    assert parse_store("milvus://host/db1").uri == "http://host:19530/db1"
    for bad, words in [("milvus:///tmp/photos.sqlite", ".db"), ("redis://x", "not a Milvus address"), ("photos", "not a store")]:
        with pytest.raises(ReslabError, match=words):
            parse_store(bad)
    assert collection_name("/data/photos.index") == "photos"
    assert collection_name("my-photos 2024") == "my_photos_2024"
    assert collection_name("2024") == "_2024"


def test_names_that_are_not_utf8_round_trip_through_text():
    for name in ["/a/plain.jpg", "/a/new\nline.jpg", os.fsdecode(b"/a/caf\xe9.jpg"), os.fsdecode(b"/\xff\xfe/x.png"), "/a/é😀.jpg"]:
        text = to_text(name)
        text.encode("utf-8")  # always valid UTF-8 (what Milvus VARCHAR accepts)
        assert from_text(text) == name
    assert to_text("/a/plain.jpg") == "/a/plain.jpg"  # ordinary names are stored as they are
    assert name_key("/a/b.jpg") == name_key("/a/b.jpg") != name_key("/a/c.jpg")


# -- the same guarantees as the local store ----------------------------------------------------------
def test_exact_search_gives_identical_results_on_both_stores(photos, thumb, tmp_path, milvus_uri):
    local = build_index(photos, tmp_path / "local", thumb, FAST)
    remote = build_index(photos, tmp_path / "photos.index", thumb, FAST, store=milvus_uri)
    assert (local.count, remote.count, remote.embedded) == (40, 40, 40)
    assert (tmp_path / "photos.index" / "manifest.json").exists()  # the pointer: later commands need no --store

    local_items, local_vectors = snapshot(tmp_path / "local")
    milvus_items, milvus_vectors = snapshot(tmp_path / "photos.index")
    assert milvus_items == local_items  # same ids (walk order), paths, stats, hashes, labels
    for i in local_vectors:
        np.testing.assert_array_equal(milvus_vectors[i], local_vectors[i])

    with SearchIndex.open(tmp_path / "local") as a, SearchIndex.open("photos", store=milvus_uri) as b:
        assert b.store.kind == "milvus" and b.manifest["index_kind"] == "flat"
        queries = np.stack([local_vectors[i] for i in sorted(local_vectors)])
        for hits_a, hits_b in zip(a.search_vectors(queries, 10), b.search_vectors(queries, 10)):
            assert [h.id for h in hits_b] == [h.id for h in hits_a]
            np.testing.assert_allclose([h.score for h in hits_b], [h.score for h in hits_a], atol=1e-5)
        assert [h.id for h in b.search_item(7, 5)] == [h.id for h in a.search_item(7, 5)]
        groups_a, groups_b = find_duplicates(a, 0.85), find_duplicates(b, 0.85)
        assert groups_a and [[h.id for h in g.items] for g in groups_b] == [[h.id for h in g.items] for g in groups_a]
        assert evaluate_index(b, [1, 5]) == evaluate_index(a, [1, 5])
        assert b.item_by_path(str(sorted((photos / "bees").iterdir())[0])) == a.item_by_path(str(sorted((photos / "bees").iterdir())[0]))


def test_incremental_update_in_milvus(photos, thumb, tmp_path, milvus_uri):
    out = tmp_path / "incremental.index"
    build_index(photos, out, thumb, FAST, store=milvus_uri)
    before_items, before_vectors = snapshot(out)
    ids = {it.path: i for i, it in before_items.items()}

    ants = sorted((photos / "ants").iterdir())
    added = photos / "ants" / "new_ant.jpg"
    ImageOps.mirror(Image.open(ants[0])).save(added)
    changed, deleted, touched = ants[1], ants[3], ants[4]
    shutil.copy(ants[2], changed)
    deleted.unlink()
    os.utime(touched, (1e9, 1e9))

    thumb.embedded = 0
    second = build_index(photos, out, thumb, FAST)  # no --store: the folder knows
    assert thumb.embedded == 2 and (second.embedded, second.removed, second.unchanged, second.count) == (2, 1, 38, 40)
    items, vectors = snapshot(out)
    by_path = {it.path: i for i, it in items.items()}
    assert str(deleted) not in by_path and str(added) in by_path
    assert by_path[str(changed)] == ids[str(changed)]  # an update keeps its id
    assert by_path[str(added)] == max(ids.values()) + 1  # a new file gets the next id
    np.testing.assert_array_equal(vectors[by_path[str(changed)]], before_vectors[ids[str(ants[2])]])
    assert items[by_path[str(touched)]].mtime == 1e9

    thumb.embedded = 0
    third = build_index(photos, out, thumb, FAST)
    assert (thumb.embedded, third.unchanged, third.count) == (0, 40, 40)


class Killed(Exception):
    pass


def test_run_killed_mid_commit_resumes_without_duplicates(photos, thumb, tmp_path, milvus_uri, monkeypatch):
    """A kill between reserving ids and writing rows, then a kill after a commit: nothing lost, nothing twice."""
    out = tmp_path / "killed.index"
    real = MilvusStore._upsert_items
    calls = {"n": 0}

    def dies_on_third_chunk(self, rows):
        calls["n"] += 1
        if calls["n"] == 3:
            raise Killed  # ids of this chunk are reserved, its rows never written
        return real(self, rows)

    monkeypatch.setattr(MilvusStore, "_upsert_items", dies_on_third_chunk)
    with pytest.raises(Killed):
        build_index(photos, out, thumb, FAST, store=milvus_uri)
    monkeypatch.setattr(MilvusStore, "_upsert_items", real)
    with pytest.raises(ReslabError, match="incomplete"):
        SearchIndex.open(out)

    def dies_after_second_commit(n):
        if n == 2:
            raise Killed

    with pytest.raises(Killed):
        build_index(photos, out, thumb, FAST, on_commit=dies_after_second_commit)
    thumb.embedded = 0
    resumed = build_index(photos, out, thumb, FAST)
    assert resumed.count == 40 and resumed.unchanged == 32 and thumb.embedded == 8
    items, vectors = snapshot(out)
    assert len({it.path for it in items.values()}) == len(items) == 40
    assert set(items).isdisjoint(range(17, 25))  # the ids reserved by the killed chunk are never reused
    fresh = build_index(photos, tmp_path / "fresh.index", thumb, FAST, store=milvus_uri)
    assert fresh.count == 40
    fresh_items, fresh_vectors = snapshot(tmp_path / "fresh.index")
    by_path = {it.path: vectors[i] for i, it in items.items()}
    for i, it in fresh_items.items():
        np.testing.assert_array_equal(by_path[it.path], fresh_vectors[i])


def test_bad_files_are_recorded_and_not_retried_in_milvus(photos, thumb, tmp_path, milvus_uri):
    (photos / "ants" / "empty.jpg").write_bytes(b"")
    (photos / "bees" / "text.png").write_text("not an image")
    out = tmp_path / "bad.index"
    report = build_index(photos, out, thumb, FAST, store=milvus_uri)
    assert {p for p, _ in report.bad} == {str(photos / "ants" / "empty.jpg"), str(photos / "bees" / "text.png")}
    assert report.count == 40
    thumb.embedded = 0
    again = build_index(photos, out, thumb, FAST)
    assert again.known_bad == 2 and not again.bad and thumb.embedded == 0
    shutil.copy(sorted((photos / "bees").iterdir())[0], photos / "bees" / "text.png")  # fixed by the user
    (photos / "ants" / "empty.jpg").unlink()  # or removed
    fixed = build_index(photos, out, thumb, FAST)
    assert (fixed.embedded, fixed.known_bad, fixed.count) == (1, 0, 41)
    with open_store(out) as st:
        assert st.bad_records() == []


def test_names_that_are_not_utf8_or_hold_newlines_are_indexed_losslessly(photos, thumb, tmp_path, milvus_uri):
    src = sorted((photos / "ants").iterdir())
    odd_folder = os.path.join(os.fsencode(photos), b"\xff-folder")
    os.mkdir(odd_folder)
    odd = [os.path.join(os.fsencode(photos / "ants"), b"caf\xe9.jpg"), os.fsencode(photos / "ants" / "new\nline.jpg"), os.path.join(odd_folder, b"x.jpg")]
    for raw, original in zip(odd, src):
        shutil.copy(original, raw)
    out = tmp_path / "names.index"
    report = build_index(photos, out, thumb, FAST, store=milvus_uri)
    assert report.count == 43 and not report.bad
    with SearchIndex.open(out) as idx:
        paths = {it.path: it for it in idx.items()}
        for raw in odd:
            assert os.fsdecode(raw) in paths
            assert idx.item_by_path(os.fsdecode(raw)).path == os.fsdecode(raw)
        assert paths[os.fsdecode(odd[2])].label == os.fsdecode(b"\xff-folder")
        assert idx.search_item(paths[os.fsdecode(odd[0])].id, 1)[0].path == str(src[0])  # the same bytes, the same vector
    copy_index(out, tmp_path / "names-local")  # Milvus's text form -> SQLite's bytes, and back
    copy_index(tmp_path / "names-local", tmp_path / "names-back.index", dst_store=milvus_uri)
    assert snapshot(tmp_path / "names-local")[0] == snapshot(tmp_path / "names-back.index")[0] == snapshot(out)[0]
    os.unlink(odd[0])
    again = build_index(photos, out, thumb, FAST)
    assert (again.removed, again.unchanged, again.count) == (1, 42, 42)


def test_the_store_and_the_embedder_are_checked(photos, thumb, tmp_path, milvus_uri):
    out = tmp_path / "checked.index"
    build_index(photos, out, thumb, FAST, store=milvus_uri)

    class OtherThumb(ThumbEmbedder):
        def manifest(self):
            return {**super().manifest(), "params": {"size": 7}}

    with pytest.raises(ReslabError, match=r"built with thumb \[size=6\], not thumb \[size=7\]"):
        build_index(photos, out, OtherThumb(), FAST)
    with SearchIndex.open(out) as idx:
        with pytest.raises(ReslabError, match="model 'resnet50'"):
            idx.check_query_options(model="resnet50")
    other = milvus_uri.replace("test.db", "other.db")
    with pytest.raises(ReslabError, match="points at collection checked"):
        SearchIndex.open(out, store=other)
    with pytest.raises(ReslabError, match="not a local one"):
        SearchIndex.open(out, store="local")
    with pytest.raises(IndexMissing, match="there is no index nowhere"):
        SearchIndex.open("nowhere", store=milvus_uri)
    with pytest.raises(IndexMissing, match="no Milvus Lite file"):
        SearchIndex.open("nowhere", store=other)
    assert not os.path.exists(other.removeprefix("milvus://"))  # looking did not create it
    from pymilvus import DataType, MilvusClient

    from reslab.search.milvus_connect import connect, release

    address = parse_store(milvus_uri)
    client = connect(address)
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=4)
    client.create_collection("theirs", schema=schema)
    with pytest.raises(ReslabError, match="already has a collection theirs that is not a reslab index"):
        build_index(photos, tmp_path / "theirs", thumb, FAST, store=milvus_uri)  # someone else's collection is left alone
    assert client.has_collection("theirs") and not client.has_collection("theirs__reslab")
    client.close()
    release(address)
    build_index(photos, tmp_path / "plain", thumb, FAST)
    with pytest.raises(ReslabError, match="is a local index"):
        build_index(photos, tmp_path / "plain", thumb, FAST, store=milvus_uri)


def test_index_copy_both_ways_keeps_everything(photos, thumb, tmp_path, milvus_uri):
    (photos / "ants" / "empty.jpg").write_bytes(b"")
    build_index(photos, tmp_path / "original", thumb, FAST)
    to_milvus = copy_index(tmp_path / "original", tmp_path / "copy.index", dst_store=milvus_uri, chunk=16, sample=10)
    assert (to_milvus.items, to_milvus.bad, to_milvus.checked) == (40, 1, 10)
    back = copy_index(tmp_path / "copy.index", tmp_path / "back", chunk=7)
    assert (back.items, back.checked) == (40, 40)

    original = snapshot(tmp_path / "original")
    for copy in (tmp_path / "copy.index", tmp_path / "back"):
        items, vectors = snapshot(copy)
        assert items == original[0]
        for i, v in vectors.items():
            np.testing.assert_array_equal(v, original[1][i])
        with open_store(copy) as st, open_store(tmp_path / "original") as st0:
            assert st.bad_records() == st0.bad_records()
    with SearchIndex.open(tmp_path / "original") as a, SearchIndex.open(tmp_path / "copy.index") as b:
        assert [h.id for h in a.search_item(3, 8)] == [h.id for h in b.search_item(3, 8)]

    with pytest.raises(ReslabError, match="already exists"):
        copy_index(tmp_path / "original", tmp_path / "back")  # never overwritten
    thumb.embedded = 0
    update = build_index(photos, tmp_path / "copy.index", thumb, FAST)  # a copy is an ordinary index
    assert (update.unchanged, update.known_bad, thumb.embedded) == (40, 1, 0)
    ImageOps.mirror(Image.open(sorted((photos / "bees").iterdir())[0])).save(photos / "bees" / "new.jpg")
    assert build_index(photos, tmp_path / "copy.index", thumb, FAST).embedded == 1
    with SearchIndex.open(tmp_path / "copy.index") as idx:
        assert idx.item_by_path(str(photos / "bees" / "new.jpg")).id == 41  # after the copied ids


def test_index_kinds_and_hash_indexes_in_milvus(photos, thumb, tmp_path, milvus_uri):
    """IVF and HNSW are built in Milvus and switched like FAISS's; a perceptual-hash index ranks as the binary FAISS one."""
    from reslab.embeddings import make_embedder

    out = tmp_path / "kinds.index"
    exact = build_index(photos, tmp_path / "exact", thumb, FAST)
    assert exact.count == 40
    with SearchIndex.open(tmp_path / "exact") as idx:
        truth = [[h.id for h in idx.search_item(i, 5)] for i in range(1, 41)]
    for kind in ("hnsw", "ivf", "flat"):
        build_index(photos, out, thumb, EmbedOptions(**{**FAST.__dict__, "index_kind": kind, "nprobe": 64}), store=milvus_uri)
        with SearchIndex.open(out) as idx:
            assert idx.manifest["index_kind"] == kind and idx.store._current_index()[0] == {"flat": "FLAT", "ivf": "IVF_FLAT", "hnsw": "HNSW"}[kind]
            found = [[h.id for h in idx.search_item(i, 5)] for i in range(1, 41)]
            recall = np.mean([len(set(f) & set(t)) / 5 for f, t in zip(found, truth)])
            assert recall >= (1.0 if kind == "flat" else 0.9), (kind, recall)

    build_index(photos, tmp_path / "hash-local", make_embedder("phash"), FAST)
    build_index(photos, tmp_path / "hash.index", make_embedder("phash"), FAST, store=milvus_uri)
    with SearchIndex.open(tmp_path / "hash-local") as a, SearchIndex.open(tmp_path / "hash.index") as b:
        assert b.manifest["metric"] == "hamming"
        query = sorted((photos / "ants").iterdir())[5]
        hits_a, hits_b = a.search_image(query, 6), b.search_image(query, 6)
        assert hits_a[0].path == str(query) and hits_b[0].path == str(query)
        np.testing.assert_allclose(sorted(h.score for h in hits_b), sorted(h.score for h in hits_a), atol=1e-6)  # 1 - 2 Hamming / bits
        assert [[h.id for h in g.items] for g in find_duplicates(b, 0.7)] == [[h.id for h in g.items] for g in find_duplicates(a, 0.7)]
