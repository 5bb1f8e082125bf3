"""`reslab embed FOLDER --out X --whiten-from OTHER`: the whitening fitted on another index's vectors,
stored in X's manifest, checked against X's embedder, kept or refitted on updates; the same from Python."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from tests.cli_tools import run_cli
from reslab.models import create_model
from reslab.search.postprocess import Postprocess, fit_whitening


def _photos(folder, n_per_class, seed):
    rng = np.random.default_rng(seed)
    for c in range(3):
        (folder / f"class{c}").mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            a = (rng.random((40, 48, 3)) * 100).astype(np.uint8)
            a[..., c] += 120
            Image.fromarray(a).save(folder / f"class{c}" / f"{seed}-{i}.png")
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("whiten-from")
    weights = tmp / "w.safetensors"
    from safetensors.torch import save_file

    torch.manual_seed(0)
    save_file(create_model("resnet20").state_dict(), str(weights))
    embed = ["--model", "resnet20", "--weights", str(weights), "--workers", "0", "--param", "pool=gem"]
    return tmp, embed, _photos(tmp / "generic", 6, seed=1), _photos(tmp / "mine", 3, seed=2)


def _manifest(index):
    return json.loads((index / "manifest.json").read_text())


def _vectors(index):
    from reslab.search.stores import open_store

    with open_store(index) as st:
        return st.all_vectors()[1]


def test_whitening_is_fitted_on_the_other_index_and_kept_in_the_manifest(setup, capsys):
    tmp, embed, generic, mine = setup
    code, _, err = run_cli(capsys, "embed", generic, "--out", tmp / "generic.index", *embed)
    assert code == 0, err
    out = tmp / "mine.index"
    code, _, err = run_cli(capsys, "embed", mine, "--out", out, *embed, "--whiten-from", tmp / "generic.index", "--whiten-dim", "6")
    assert code == 0, err
    post = _manifest(out)["postprocess"]
    assert post["whiten_from"]["index"] == str((tmp / "generic.index").resolve()) and post["whiten_from"]["count"] == 18
    assert _manifest(out)["index_dim"] == 6
    stored = Postprocess.from_manifest(_manifest(out)).whitening
    # fitted on the 18 generic vectors, not on the 9 of this folder (which could give at most 8 axes)
    expected = fit_whitening(_vectors(tmp / "generic.index"), dim=6, shrinkage=0.5)  # the default shrinkage
    assert np.allclose(stored.projection, expected.projection, atol=1e-4) and np.allclose(stored.mean, expected.mean, atol=1e-6)
    own = fit_whitening(_vectors(out), dim=6, shrinkage=0.5)
    assert not np.allclose(stored.mean, own.mean, atol=1e-3)
    code, text, err = run_cli(capsys, "search", out, next((mine / "class0").iterdir()), "-k", "3", "--json")
    assert code == 0, err
    assert len(json.loads(text)["hits"]) == 3
    code, text, err = run_cli(capsys, "eval-retrieval", out, "--json")
    assert code == 0, err
    assert json.loads(text)[0]["queries"] == 9
    code, text, err = run_cli(capsys, "index", "info", out, "--json")
    assert code == 0, err
    assert "fitted on" in json.loads(text)["postprocess"] and "18 items" in json.loads(text)["postprocess"]


def test_updates_keep_the_whitening_refit_it_when_the_source_changed_and_survive_its_removal(setup, capsys):
    tmp, embed, generic, mine = setup
    src_index, out = tmp / "generic2.index", tmp / "mine2.index"
    gen2, mine = shutil.copytree(generic, tmp / "generic2"), shutil.copytree(mine, tmp / "mine2")
    assert run_cli(capsys, "embed", gen2, "--out", src_index, *embed)[0] == 0
    assert run_cli(capsys, "embed", mine, "--out", out, *embed, "--whiten-from", src_index, "--whiten-dim", "6", "--whiten-shrinkage", "0.1")[0] == 0
    first = Postprocess.from_manifest(_manifest(out)).whitening
    _photos(mine, 4, seed=3)  # the folder grows; an update needs no options
    code, _, err = run_cli(capsys, "embed", mine, "--out", out, "--workers", "0")
    assert code == 0, err
    again = Postprocess.from_manifest(_manifest(out))
    assert _manifest(out)["count"] == 21 and np.array_equal(again.whitening.projection, first.projection)
    _photos(gen2, 8, seed=4)  # the source grows: the next update refits on it
    assert run_cli(capsys, "embed", gen2, "--out", src_index, "--workers", "0")[0] == 0
    assert run_cli(capsys, "embed", mine, "--out", out, "--workers", "0")[0] == 0
    refit = Postprocess.from_manifest(_manifest(out))
    assert refit.source["count"] == 18 + 24 and not np.allclose(refit.whitening.mean, first.mean, atol=1e-6)
    shutil.rmtree(src_index)  # the source is gone: the index keeps the whitening it has
    (mine / "class0" / "3-0.png").unlink()
    code, _, err = run_cli(capsys, "embed", mine, "--out", out, "--workers", "0")
    assert code == 0, err
    kept = Postprocess.from_manifest(_manifest(out))
    assert _manifest(out)["count"] == 20 and np.array_equal(kept.whitening.projection, refit.whitening.projection)
    # --whiten alone: back to a whitening of the collection itself (too small for 6 axes: none yet)
    assert run_cli(capsys, "embed", mine, "--out", out, "--workers", "0", "--whiten")[0] == 0
    assert "whiten_from" not in _manifest(out)["postprocess"]


def test_a_source_that_cannot_whiten_this_index_is_refused_before_anything_is_made(setup, capsys):
    tmp, embed, generic, mine = setup
    if not (tmp / "generic.index").exists():
        assert run_cli(capsys, "embed", generic, "--out", tmp / "generic.index", *embed)[0] == 0
    cases = [
        # another pooling: another vector space
        ([*embed[:-1], "pool=avg", "--whiten-from", tmp / "generic.index"], "same embedder"),
        ([*embed, "--whiten-from", tmp / "generic.index", "--whiten-dim", "64"], "holds 18 items"),
        ([*embed, "--whiten-from", tmp / "nothing.index"], "no index there"),
        ([*embed, "--whiten-from", tmp / "generic.index", "--no-whiten"], "contradict"),
    ]
    for args, message in cases:
        out = tmp / "refused.index"
        code, _, err = run_cli(capsys, "embed", mine, "--out", out, *args)
        assert code != 0 and message in err and "Traceback" not in err, err
        assert not out.exists()  # refused before the index was created
    assert run_cli(capsys, "embed", generic, "--out", tmp / "hashes.index", "--method", "phash", "--workers", "0")[0] == 0
    code, _, err = run_cli(capsys, "embed", mine, "--out", tmp / "refused.index", *embed, "--whiten-from", tmp / "hashes.index")
    assert code != 0 and "perceptual hashes" in err


def test_the_python_api_gives_the_same_index(setup, capsys):
    from reslab.search import EmbedOptions, PostOptions, SearchIndex, build_index, make_embedder

    tmp, embed, generic, mine = setup
    if not (tmp / "generic.index").exists():
        assert run_cli(capsys, "embed", generic, "--out", tmp / "generic.index", *embed)[0] == 0
    cli = tmp / "cli.index"
    assert run_cli(capsys, "embed", mine, "--out", cli, *embed, "--whiten-from", tmp / "generic.index", "--whiten-dim", "6", "--whiten-shrinkage", "0.2")[0] == 0
    assert _manifest(cli)["postprocess"]["whiten_shrinkage"] == 0.2
    emb = make_embedder("cnn", model="resnet20", weights=str(tmp / "w.safetensors"), pool="gem")
    # the CLI's options start from a new index's defaults (DBA 3, QE 5, re-ranking)
    options = EmbedOptions(workers=0, post=PostOptions(dba=3, qe=5, rerank=True, whiten_dim=6, whiten_shrinkage=0.2,
                                                       whiten_from=tmp / "generic.index"))  # fmt: skip
    build_index(mine, tmp / "api.index", emb, options)
    a, b = Postprocess.from_manifest(_manifest(cli)), Postprocess.from_manifest(_manifest(tmp / "api.index"))
    assert np.allclose(a.whitening.projection, b.whitening.projection, atol=1e-5) and a.options == b.options
    query = next((mine / "class1").iterdir())
    with SearchIndex.open(cli) as x, SearchIndex.open(tmp / "api.index") as y:
        assert [h.path for h in x.search_image(query, k=4)] == [h.path for h in y.search_image(query, k=4)]
