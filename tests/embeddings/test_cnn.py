"""The CNN embedder: pooled features vs a chosen layer, manifests, pickling for decode workers."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from reslab.errors import ReslabError
from reslab.models import create_model
from reslab.embeddings import CnnEmbedder, describe, l2_normalize


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    return CnnEmbedder(model="resnet18", weights=None, device="cpu")


def test_pooled_embedding_is_forward_head_pre_logits(resnet18):
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    v = resnet18.embed([resnet18.preprocess(img)])
    x = resnet18.eval_preprocess(img)[None]  # the model's own eval preprocessing, as a float tensor
    with torch.inference_mode():
        expected = resnet18.net.forward_head(resnet18.net.forward_features(x), pre_logits=True).numpy()
    assert v.shape == (1, 512) and resnet18.dim == 512
    np.testing.assert_allclose(v, l2_normalize(expected), atol=1e-4)


def test_layer_embedding_is_its_global_average(resnet18):
    emb = CnnEmbedder(model="resnet18", weights=None, layer="layer3", device="cpu")
    emb.net.load_state_dict(resnet18.net.state_dict())
    batch = [np.random.default_rng(1).integers(0, 256, (224, 224, 3), dtype=np.uint8)]
    x = torch.from_numpy(emb._to_input(batch))
    with torch.inference_mode():
        h = emb.net.conv1(x)
        h = emb.net.maxpool(emb.net.relu(emb.net.bn1(h)))
        h = emb.net.layer3(emb.net.layer2(emb.net.layer1(h)))  # (1, 256, 14, 14)
    assert emb.dim == 256
    np.testing.assert_allclose(emb.embed(batch), l2_normalize(h.mean(dim=(2, 3)).numpy()), atol=1e-5)
    assert emb.manifest()["layer"] == "layer3" and "layer layer3" in describe(emb.manifest())


def test_unknown_layer_and_changed_weights_are_refused(resnet18, tmp_path):
    with pytest.raises(ReslabError, match="no layer 'layer9'.*layer4"):
        CnnEmbedder(model="resnet18", weights=None, layer="layer9", device="cpu")
    manifest = {**resnet18.manifest(), "weights_sha256": "0" * 64}
    with pytest.raises(ReslabError, match="have changed since the index"):
        CnnEmbedder.from_manifest(manifest, tmp_path)


def test_pickled_embedder_carries_preprocessing_not_the_network(resnet18):
    blob = pickle.dumps(resnet18.preprocess)
    assert len(blob) < 2000  # resnet18's weights are 45 MB
    img = Image.new("RGB", (320, 240), (10, 200, 30))
    np.testing.assert_array_equal(pickle.loads(blob)(img), resnet18.preprocess(img))


def test_a_vits_block_embeds_as_the_mean_of_its_tokens():
    from reslab.inference.heads import InferenceHead

    emb = CnnEmbedder(model="vit_b_32", weights=None, layer="block6", device="cpu")
    assert emb.dim == 768 and emb.manifest()["layer"] == "block6"
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        captured = []
        handle = emb.net.encoder.layers[5].register_forward_hook(lambda m, i, o: captured.append(o))
        emb.net(x)
        handle.remove()
        torch.testing.assert_close(InferenceHead(emb.net, "block6")(x)[0], captured[0].mean(dim=1))


def test_an_index_records_its_runtime_and_queries_reuse_it_without_measuring(tmp_path, monkeypatch):
    from reslab.inference import auto
    from reslab.inference import export as export_module
    from reslab.search.embed import EmbedOptions, build_index, read_manifest
    from reslab.search.index import SearchIndex

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(3)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(photos / f"{i}.png")
    torch.manual_seed(0)
    torch.save(create_model("resnet20").state_dict(), tmp_path / "r20.pth")  # random weights could not be re-created
    emb = CnnEmbedder(model="resnet20", weights=str(tmp_path / "r20.pth"), device="cpu", runtime="onnxruntime")
    build_index(photos, tmp_path / "index", emb, EmbedOptions(workers=0, progress=False))
    assert read_manifest(tmp_path / "index")["runtime"] == "onnxruntime fp32"

    monkeypatch.setattr(auto, "calibrate", lambda *a, **k: pytest.fail("the index's runtime needs no measurement"))
    monkeypatch.setattr(export_module, "onnx_bytes", lambda *a, **k: pytest.fail("the export is cached"))
    with SearchIndex.open(tmp_path / "index", runtime="auto", batch_size=1) as index:
        hits = index.search_image(photos / "1.png", k=1)
        assert index.embedder().session.choice.runtime == "onnxruntime"
    assert hits[0].path.endswith("1.png") and hits[0].score == pytest.approx(1.0, abs=1e-6)
