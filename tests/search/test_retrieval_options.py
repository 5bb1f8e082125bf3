"""Retrieval options: GeM and multi-scale pooling, flip invariance, layer concatenation, PCA-whitening
(fit, round trip through the manifest), DBA and alpha-QE, and their use by search, duplicates and eval."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from tests.cli_tools import run_cli
from reslab.errors import ReslabError
from reslab.models import create_model
from reslab.inference.pooling import Pooling, descriptor, gem
from reslab.search.postprocess import PostOptions, Postprocess, fit_whitening, weighted_neighbour_sum


def test_gem_is_between_average_and_max():
    x = torch.rand(2, 3, 5, 5)
    assert torch.allclose(gem(x, 1.0), x.mean(dim=(2, 3)), atol=1e-6)
    g3 = gem(x, 3.0)
    assert (g3 >= x.mean(dim=(2, 3)) - 1e-6).all() and (g3 <= x.amax(dim=(2, 3)) + 1e-6).all()
    assert torch.allclose(gem(x, 200.0), x.amax(dim=(2, 3)), atol=0.05)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return create_model("resnet20", num_classes=4).eval()


def test_flip_pooling_gives_a_mirror_the_same_descriptor(net):
    x = torch.randn(2, 3, 16, 16)
    p = Pooling(pool="gem", flip=True)
    with torch.no_grad():
        a, b = descriptor(net, x, p), descriptor(net, x.flip(-1), p)
        plain_a, plain_b = descriptor(net, x, Pooling()), descriptor(net, x.flip(-1), Pooling())
    assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(plain_a, plain_b, atol=1e-3)


def test_multiscale_and_layer_concatenation_shapes(net):
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        ms = descriptor(net, x, Pooling(scales=(1.0, 0.5)))
        cat = descriptor(net, x, Pooling(pool="gem", layers=("layer2",)))
    assert ms.shape == (3, 64)
    assert cat.shape == (3, 32 + 64)  # layer2 (32 channels) + the last stage (64)
    assert torch.allclose(cat[:, :32].norm(dim=1), torch.ones(3), atol=1e-5)  # each part unit length
    with pytest.raises(ReslabError, match="no layer"):
        descriptor(net, x, Pooling(layers=("layer9",)))


def test_pooling_params_round_trip_and_legacy_defaults():
    p = Pooling(pool="gem", gem_p=4.0, scales=(1.0, 0.707), flip=True, layers=("features.5",))
    assert Pooling.from_params(json.loads(json.dumps(p.as_params()))) == p
    assert Pooling.from_params({}) == Pooling()  # an index built before the options: average pooling
    with pytest.raises(ReslabError):
        Pooling(pool="max")


def test_whole_small_keeps_a_thumbnails_edges_and_crops_photos_as_before():
    from reslab.embeddings import identity
    from reslab.embeddings.cnn import PixelPreprocess
    from reslab.inference.pooling import DEFAULT_PARAMS, EmbeddingHead

    # a 32 px thumbnail with a 1 px red top edge: centre-cropping 224 of 256 would cut it away
    thumb = Image.new("RGB", (32, 32), (0, 0, 255))
    thumb.paste((255, 0, 0), (0, 0, 32, 1))
    cropped = PixelPreprocess(224, 256, "bilinear")(thumb)
    whole = PixelPreprocess(224, 256, "bilinear", whole_small=True)(thumb)
    assert cropped.shape == whole.shape == (224, 224, 3)
    assert whole[0, 112, 0] > 200 and whole[0, 112, 2] < 60  # the edge is there
    assert cropped[0, 112, 0] < 60  # the edge was cut away
    photo = Image.new("RGB", (400, 300), (0, 0, 255))  # larger than the input: cropped as before
    assert np.array_equal(PixelPreprocess(224, 256, "bilinear", whole_small=True)(photo), PixelPreprocess(224, 256, "bilinear")(photo))
    # new indexes get it; older ones (no whole_small in their params) keep cropping thumbnails
    assert DEFAULT_PARAMS["whole_small"] is True
    assert Pooling.from_params({"pool": "gem"}).whole_small is False
    assert identity({"method": "cnn", "params": {}})["params"]["whole_small"] is False
    # an input option: plain pooling stays plain, and one export graph serves both
    assert Pooling(whole_small=True).is_plain
    gem_flip = dict(pool="gem", flip=True)
    assert EmbeddingHead(None, Pooling(**gem_flip, whole_small=True)).key() == EmbeddingHead(None, Pooling(**gem_flip)).key()


def _clustered(n=120, d=32, k=4, seed=0, signal=0.5):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, d))
    labels = np.arange(n) % k
    # strong nuisance directions that vary from item to item (lighting, colour casts) on top of weak
    # class structure: what whitening turns down
    nuisance = rng.standard_normal((3, d))
    x = centres[labels] * signal + rng.standard_normal((n, 3)) @ nuisance * 3.0 + rng.standard_normal((n, d)) * 0.2
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), labels


def test_whitening_decorrelates_and_round_trips_through_the_manifest():
    x, _ = _clustered()
    w = fit_whitening(x, dim=16, shrinkage=0.0)
    z = (x - w.mean) @ w.projection
    cov = np.cov(z, rowvar=False)
    assert np.allclose(cov, np.eye(16), atol=1e-3)  # unit variance, uncorrelated
    post = Postprocess(PostOptions(whiten=True, whiten_dim=16, qe=2), w)
    again = Postprocess.from_manifest({"postprocess": json.loads(json.dumps(post.to_manifest()))})
    assert np.array_equal(again.whitening.projection, w.projection) and again.options.qe == 2
    assert np.allclose(np.linalg.norm(again.transform(x), axis=1), 1.0)
    damaged = post.to_manifest()
    damaged["whiten"]["projection"]["data"] = damaged["whiten"]["projection"]["data"][:-8] + "AAAAAAA="
    with pytest.raises(ReslabError, match="damaged"):
        Postprocess.from_manifest({"postprocess": damaged})


def test_whitening_rank_is_limited_by_the_collection():
    x, _ = _clustered(n=10, d=32)
    assert fit_whitening(x, dim=256).projection.shape == (32, 9)
    with pytest.raises(ReslabError, match="at least 3"):
        fit_whitening(x[:2])


def test_neighbour_sum_excludes_self_and_weights_by_similarity():
    db = np.eye(4, dtype=np.float32)
    db[1] = [0.8, 0.6, 0, 0]
    out = weighted_neighbour_sum(db[:1], db, n=1, alpha=1.0, exclude=np.array([0]))
    expected = db[0] + 0.8 * db[1]
    assert np.allclose(out[0], expected / np.linalg.norm(expected), atol=1e-6)


def test_whitening_and_expansion_improve_retrieval_of_clustered_vectors():
    from reslab.search.retrieval import postprocessed_scores, retrieval_scores

    x, labels = _clustered()
    labels = [str(v) for v in labels]
    plain = retrieval_scores(x, labels, [10]).precision[10]
    whitened = postprocessed_scores(x, labels, [10], Postprocess.fit(PostOptions(whiten=True, whiten_dim=16), x)).precision[10]
    assert whitened > plain + 0.1
    # where the first results are mostly right, expansion pulls in the rest of the class
    x, labels = _clustered(signal=1.0)
    labels = [str(v) for v in labels]
    whiten = dict(whiten=True, whiten_dim=16, whiten_shrinkage=0.1)  # a sharp whitening: the classes well apart
    w = postprocessed_scores(x, labels, [10], Postprocess.fit(PostOptions(**whiten), x))
    e = postprocessed_scores(x, labels, [10], Postprocess.fit(PostOptions(**whiten, qe=3, dba=2), x))
    assert e.mean_ap > w.mean_ap


def test_index_with_postprocessing_searches_evaluates_and_finds_duplicates(tmp_path, capsys):
    rng = np.random.default_rng(0)
    src = tmp_path / "photos"
    for c, colour in enumerate(["red", "green", "blue"]):
        (src / colour).mkdir(parents=True)
        for i in range(6):
            a = (rng.random((48, 64, 3)) * 90).astype(np.uint8)
            a[..., c] += 150
            a[: 8 + 4 * i, :16] = 255  # a bright corner: mirrored copies differ
            Image.fromarray(a).save(src / colour / f"{i}.png")
    ImageOps.mirror(Image.open(src / "red" / "3.png")).save(tmp_path / "mirror.png")
    weights = tmp_path / "w.safetensors"
    from safetensors.torch import save_file

    torch.manual_seed(0)
    save_file(create_model("resnet20").state_dict(), str(weights))
    embed = ["--model", "resnet20", "--weights", str(weights), "--workers", "0", "--param", "pool=gem", "--param", "flip=true"]
    code, _, err = run_cli(capsys, "embed", str(src), "--out", str(tmp_path / "plain"), *embed, "--no-whiten", "--dba", "0", "--qe", "0")
    assert code == 0, err
    code, out, err = run_cli(capsys, "search", str(tmp_path / "plain"), str(tmp_path / "mirror.png"), "-k", "1", "--json")
    hit = json.loads(out)["hits"][0]
    assert hit["path"].endswith("red/3.png") and hit["score"] > 0.99  # flip pooling: the mirror is the same photo
    idx = tmp_path / "idx"
    code, _, err = run_cli(capsys, "embed", str(src), "--out", str(idx), *embed, "--whiten", "--whiten-dim", "8", "--qe", "2", "--dba", "1")
    assert code == 0, err
    manifest = json.loads((idx / "manifest.json").read_text())
    assert manifest["params"]["pool"] == "gem" and manifest["params"]["flip"] is True
    assert manifest["postprocess"]["qe"] == 2 and manifest["index_dim"] == 8
    code, out, err = run_cli(capsys, "search", str(idx), str(tmp_path / "mirror.png"), "-k", "3", "--json")
    assert code == 0, err
    assert len(json.loads(out)["hits"]) == 3
    code, out, err = run_cli(capsys, "eval-retrieval", str(idx), "--json")
    assert code == 0, err
    assert json.loads(out)[0]["queries"] == 18
    # an update keeps the index's post-processing without repeating the options
    Image.open(src / "red" / "0.png").save(src / "red" / "copy.png")
    code, _, err = run_cli(capsys, "embed", str(src), "--out", str(idx), "--workers", "0")
    assert code == 0, err
    manifest = json.loads((idx / "manifest.json").read_text())
    assert manifest["count"] == 19 and manifest["postprocess"]["qe"] == 2 and manifest["postprocess"]["whiten"] is not None
    code, out, err = run_cli(capsys, "duplicates", str(idx), "--threshold", "0.999999", "--json")
    assert code == 0, err  # thresholds are cosines of the embedder's own rows, whitening or not
    groups = [sorted(h["path"].rsplit("/", 1)[1] for h in g["items"]) for g in json.loads(out)]
    assert ["0.png", "copy.png"] in groups
