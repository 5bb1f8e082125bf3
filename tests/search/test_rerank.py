"""k-reciprocal re-ranking (`reslab embed --rerank`, `reslab.search.rerank`): the encoding on a hand-made
case, re-ranking on clustered vectors, the stored graph (round trip, damage, updates), search ==
eval-retrieval, CLI == Python API, and bad option values."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.cli_tools import run_cli
from reslab.errors import ReslabError
from reslab.search import EmbedOptions, PostOptions, SearchIndex, build_index, make_embedder
from reslab.search.postprocess import Postprocess
from reslab.search.rerank import fit_graph, reciprocal, rerank_order
from reslab.search.retrieval import evaluate_index, postprocessed_scores, ranked_ids, retrieval_scores

RERANK = ["--rerank-k1", "4", "--rerank-k2", "2", "--rerank-lambda", "0.3"]


def _unit(angles_deg: list[float]) -> np.ndarray:
    a = np.radians(angles_deg)
    return np.stack([np.cos(a), np.sin(a)], 1).astype(np.float32)


def test_encoding_keeps_mutual_neighbours_and_drops_a_one_way_one():
    # two tight clusters (0-3 and 4-7) and an outlier (8) whose 3 nearest are cluster A's, while no member of A
    # has it among its own 3 nearest: a one-way neighbour
    rows = _unit([0, 1, 2, 3, 90, 91, 92, 93, 20])
    graph = fit_graph(np.arange(9), rows, k1=3)
    assert set(graph.neighbours[8]) <= {0, 1, 2, 3}
    assert not reciprocal(graph.neighbours, 3)[8].any()  # none of the outlier's neighbours is mutual
    v = graph.encoding.toarray()
    assert np.allclose(v.sum(1), 1, atol=1e-5)
    assert set(np.flatnonzero(v[0])) == {0, 1, 2, 3}  # a member: its cluster, not the outlier
    assert set(np.flatnonzero(v[5])) == {4, 5, 6, 7}
    assert set(np.flatnonzero(v[8])) == {8}  # the outlier: only itself
    # weights fall with the distance: item 1 is nearer to 0 than item 3 is
    assert v[0, 0] > v[0, 1] > v[0, 3]


def _clusters(seed=0, n_class=5, per=40, dim=32, noise=1.2):
    rng = np.random.default_rng(seed)
    x = np.repeat(rng.normal(size=(n_class, dim)), per, 0) + noise * rng.normal(size=(n_class * per, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), np.repeat(np.arange(n_class), per)


def test_rerank_puts_a_query_whose_nearest_item_is_of_another_class_right():
    # the algorithm itself, first result included (`--rerank-first`; by default cosine's nearest stays first)
    # five overlapping Gaussian classes: for some queries the nearest item is of another class
    x, labels = _clusters(noise=1.6)
    graph = fit_graph(np.arange(len(x)), x, k1=10)
    sims = x @ x.T
    fixed, broken = [], []
    for q in range(len(x)):
        s = sims[q].copy()
        s[q] = -np.inf
        order = np.argsort(-s, kind="stable")[:-1]
        reranked = order[rerank_order(graph, order, s[order], k2=4, lam=0.3, own=q)]
        plain_right, rerank_right = labels[order[0]] == labels[q], labels[reranked[0]] == labels[q]
        (fixed if rerank_right and not plain_right else broken if plain_right and not rerank_right else []).append(q)
    assert len(fixed) >= 5 and len(fixed) > 2 * len(broken), (fixed, broken)  # 9 fixed, 2 broken
    # and over the whole ranking: the same through the evaluation path
    names = [str(v) for v in labels]
    post = Postprocess(PostOptions(rerank=True, rerank_k1=10, rerank_k2=4), rerank_graph={})
    plain = retrieval_scores(x, names, [10])
    reranked = postprocessed_scores(x, names, [10], post, graph)
    assert reranked.precision[10] > plain.precision[10] + 0.02 and reranked.mean_ap > plain.mean_ap + 0.02


def test_an_edited_copy_of_an_indexed_item_stays_first():
    from reslab.search.postprocess import weighted_neighbour_sum
    from reslab.search.rerank import is_copy, nearest_other

    # 100 items in tight classes, searched with DBA 3 + QE 5 (which blur neighbours together); each query is a
    # copy of one item with a little noise (cosine ~0.96 to it, as a resized or re-encoded photo)
    x, _labels = _clusters(noise=0.6, per=20)
    database = weighted_neighbour_sum(x, x, 3, 3.0)
    graph = fit_graph(np.arange(len(x)), database, k1=30)
    rng = np.random.default_rng(1)
    copies = x + 0.3 * rng.normal(size=x.shape).astype(np.float32) / np.sqrt(x.shape[1])
    copies /= np.linalg.norm(copies, axis=1, keepdims=True)
    queries = weighted_neighbour_sum(copies, database, 5, 3.0, rows=x)
    guarded, unguarded = [], []
    for i, q in enumerate(queries):
        s = database @ q
        order = np.argsort(-s, kind="stable")
        assert order[0] == i  # cosine finds every original first
        first = order[0]
        keep = is_copy(float(copies[i] @ x[first]), float(x[first] @ x[nearest_other(graph, first)]))
        guarded.append(order[rerank_order(graph, order, s[order], 1, 0.5, keep_first=keep)][0] == i)
        unguarded.append(order[rerank_order(graph, order, s[order], 1, 0.5)][0] == i)
    assert all(guarded)
    assert sum(unguarded) < len(x) - 3  # without the guard, neighbourhoods alone lose some copies (91 of 100 kept)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rerank")
    rng = np.random.default_rng(0)
    src = tmp / "photos"
    for c in range(3):
        (src / f"class{c}").mkdir(parents=True)
        for i in range(8):  # a colour of its own per photo (colour histograms tell them apart), the class's channel high
            colour = rng.integers(0, 120, 3)
            colour[c] = rng.integers(150, 230)
            a = np.clip(colour + rng.normal(0, 12, (24, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(a).save(src / f"class{c}" / f"{i}.png")
    return tmp, src


def _embed(capsys, src, out, *options):
    code, _, err = run_cli(capsys, "embed", src, "--out", out, "--method", "hist", "--workers", "0", *options)
    assert code == 0, err
    return json.loads((out / "manifest.json").read_text())


def test_graph_is_stored_beside_the_index_and_a_damaged_one_is_refused(photos, capsys):
    tmp, src = photos
    out = tmp / "stored.index"
    manifest = _embed(capsys, src, out, *RERANK)
    record = manifest["postprocess"]["rerank_graph"]
    assert manifest["postprocess"]["rerank"] == {"k1": 4, "k2": 2, "lambda": 0.3, "first": False} and record["items"] == 24
    with SearchIndex.open(out) as idx:
        graph = idx.post.graph(out)
        ids, rows = idx.store.all_vectors()
        expected = fit_graph(ids, idx.post.database(idx.post.transform(rows)), 4)
        assert np.array_equal(graph.neighbours, expected.neighbours) and np.allclose(graph.encoding.toarray(), expected.encoding.toarray())
        assert "k-reciprocal re-ranking (k1 4, k2 2, lambda 0.3)" in idx.post.describe()
    code, text, err = run_cli(capsys, "index", "info", out, "--json")
    assert "k-reciprocal re-ranking" in json.loads(text)["postprocess"]
    side = out / record["file"]
    good = side.read_bytes()
    side.write_bytes(good[:-20] + b"\0" * 20)
    code, text, err = run_cli(capsys, "search", out, "id:1", "--json")
    assert code == 1 and "is damaged" in err and "rerun `reslab embed`" in err and "Traceback" not in err
    code, text, err = run_cli(capsys, "eval-retrieval", out, "--json")
    assert code == 1 and "is damaged" in err
    # embed again refits it (without re-embedding) and search works
    _embed(capsys, src, out)
    code, text, err = run_cli(capsys, "search", out, "id:1", "--json")
    assert code == 0, err


def test_an_update_refits_the_graph_and_removes_the_old_file(photos, capsys):
    tmp, src = photos
    folder = tmp / "growing"
    shutil.copytree(src, folder)
    out = tmp / "growing.index"
    before = _embed(capsys, folder, out, *RERANK)["postprocess"]["rerank_graph"]
    for i in range(3):
        shutil.copy(folder / "class1" / f"{i}.png", folder / "class1" / f"copy{i}.png")
    after = _embed(capsys, folder, out)["postprocess"]  # the index's own options, kept
    assert after["rerank"] == {"k1": 4, "k2": 2, "lambda": 0.3, "first": False}
    assert after["rerank_graph"]["items"] == 27 and after["rerank_graph"]["sha256"] != before["sha256"]
    assert sorted(p.name for p in out.glob("rerank-*.npz")) == [after["rerank_graph"]["file"]]
    with SearchIndex.open(out) as idx:
        assert len(idx.post.graph(out).ids) == 27
        copy = idx.item_by_path(folder / "class1" / "copy0.png")
        assert copy.id in set(idx.post.graph(out).ids) and len(idx.search_item(copy.id, 30)) == 26
    # --no-rerank drops it, files included
    assert _embed(capsys, folder, out, "--no-rerank")["postprocess"]["rerank_graph"] is None
    assert not list(out.glob("rerank-*.npz"))


@pytest.mark.parametrize("first", [[], ["--rerank-first"]])
def test_search_and_eval_retrieval_rank_the_same_way(photos, capsys, first):
    tmp, src = photos
    out = tmp / f"agree{len(first)}.index"
    _embed(capsys, src, out, *RERANK, *first, "--dba", "2", "--qe", "2")
    with SearchIndex.open(out) as idx:
        items = list(idx.items())
        plain = Postprocess(PostOptions(dba=2, qe=2))
        for item in items:  # cosine's nearest stays first unless --rerank-first
            if not first:
                assert idx.search_item(item.id, 1)[0].id == ranked_ids_plain(idx, plain, item.id)[0]
        for item in items[:: len(items) // 4]:
            evaluated = ranked_ids(idx, item.id)
            assert [h.id for h in idx.search_item(item.id, 10)] == evaluated[:10]
        # eval-retrieval's P@1 is the share of items whose first search result has their label
        first = [idx.search_item(it.id, 1)[0].label == it.label for it in items]
        assert evaluate_index(idx, [1]).precision[1] == pytest.approx(np.mean(first))
        # an external copy of an indexed photo (not in the collection) comes back first
        shutil.copy(src / "class2" / "5.png", tmp / "outside.png")
        assert idx.search_image(tmp / "outside.png", 3)[0].path.endswith("class2/5.png")
    code, text, err = run_cli(capsys, "search", out, f"id:{items[3].id}", "-k", "5", "--json")
    assert code == 0, err
    assert [h["id"] for h in json.loads(text)["hits"]] == ranked_ids(SearchIndex.open(out), items[3].id)[:5]


def test_python_api_builds_the_same_index_as_the_cli(photos, capsys):
    tmp, src = photos
    cli = tmp / "cli.index"
    _embed(capsys, src, cli, *RERANK)
    api = tmp / "api.index"
    options = EmbedOptions(workers=0, progress=False, post=PostOptions(dba=3, qe=5, rerank=True, rerank_k1=4, rerank_k2=2, rerank_lambda=0.3))
    build_index(src, api, make_embedder("hist"), options)
    a, b = (json.loads((p / "manifest.json").read_text())["postprocess"] for p in (cli, api))
    assert a["rerank_graph"]["sha256"] == b["rerank_graph"]["sha256"] and a["rerank"] == b["rerank"]
    with SearchIndex.open(cli) as x, SearchIndex.open(api) as y:
        query = src / "class0" / "2.png"
        assert [(h.id, h.score) for h in x.search_image(query, 6)] == [(h.id, h.score) for h in y.search_image(query, 6)]


def ranked_ids_plain(idx, post, item_id):
    from reslab.search.retrieval import _collection, leave_one_out_order
    from reslab.search.postprocess import weighted_neighbour_sum

    ids, _labels, vectors = _collection(idx)
    q = int(np.flatnonzero(ids == item_id)[0])
    plain = post.transform(vectors)
    database = post.database(plain)
    query = weighted_neighbour_sum(plain[q : q + 1], database, 2, 3.0, exclude=np.array([q]), rows=plain)[0]
    return [int(ids[r]) for r in leave_one_out_order(query @ database.T, q)]


@pytest.mark.parametrize("options, message", [
    (["--rerank-k1", "0"], "--rerank-k1"),
    (["--rerank-k2", "0"], "--rerank-k2"),
    (["--rerank-k1", "4", "--rerank-k2", "5"], "--rerank-k2"),
    (["--rerank-lambda", "1.5"], "--rerank-lambda"),
    (["--rerank-lambda", "-0.1"], "--rerank-lambda"),
    (["--no-rerank", "--rerank-k1", "5"], "contradict"),
])  # fmt: skip
def test_bad_rerank_options_end_in_one_message_and_create_nothing(photos, capsys, options, message):
    tmp, src = photos
    out = tmp / "never.index"
    code, _, err = run_cli(capsys, "embed", src, "--out", out, "--method", "hist", "--workers", "0", *options)
    assert code == 1 and message in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2, err
    assert not out.exists()


def test_bad_rerank_options_from_python():
    for bad in (dict(rerank_k1=0), dict(rerank_k2=0), dict(rerank_lambda=2.0), dict(rerank_k1=2.5)):
        with pytest.raises(ReslabError, match="rerank"):
            PostOptions(rerank=True, **bad)


def test_new_cnn_indexes_rerank_by_default_and_a_small_collection_is_left_as_it_was(photos, capsys):
    from reslab.search.embed import post_options_for

    assert post_options_for({"method": "cnn", "status": "building"}, EmbedOptions()).rerank
    assert not post_options_for({"method": "hist", "status": "building"}, EmbedOptions()).rerank
    # 24 items are too few for k1 = 30 (the k1 nearest would be the whole collection): asked, not fitted, searched plainly
    tmp, src = photos
    out = tmp / "small.index"
    manifest = _embed(capsys, src, out, "--rerank", "--dba", "0", "--qe", "0")
    assert manifest["postprocess"]["rerank"]["k1"] == 30 and manifest["postprocess"]["rerank_graph"] is None
    assert not list(out.glob("rerank-*.npz"))
    with SearchIndex.open(out) as idx:
        assert "re-ranking asked, not fitted (needs 61 to" in idx.post.describe()
        hits = idx.search_item(1, 5)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)  # plain cosine order
