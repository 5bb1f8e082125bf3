"""Vision Transformers: attention paths, pooling, token maps, options and their mistakes.

Weight compatibility with torchvision (keys, logits, interpolated position embeddings) is checked in
test_conformance.py against fixtures made with torchvision's own constructors.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from reslab.errors import ReslabError
from reslab.fileio import atomic_torch_save
from reslab.models import create_model
from reslab.models.features import feature_maps
from reslab.models.vit import interpolate_pos_embedding, patch_grid_map, record_attention


def tiny(**options):
    """A 3-block ViT on 32 px images: fast, with every code path of the big ones."""
    torch.manual_seed(0)
    base = {"num_layers": 3, "hidden_dim": 48, "num_heads": 4, "mlp_dim": 96, "stochastic_depth": 0.0}
    model = create_model("vit_tiny_patch4_32", **{**base, **options}).eval()
    with torch.no_grad():  # torchvision zero-initialises the head: give it values so logits differ
        model.get_classifier().weight.normal_(0, 0.02)
    return model


def test_explicit_attention_path_equals_the_fused_one():
    model = tiny()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        fused = model(x)
        with record_attention(model) as weights:
            explicit = model(x)
    torch.testing.assert_close(explicit, fused, rtol=1e-5, atol=1e-5)
    assert len(weights) == 3 and all(w.shape == (2, 4, 65, 65) for w in weights)
    for w in weights:
        torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, 65))
    # the layers are back on the fused path, keeping nothing
    attn = model.encoder.layers.encoder_layer_0.self_attention
    assert not attn.keep_weights and attn.weights is None


def test_attention_weights_are_softmax_of_scaled_qk():
    model = tiny()
    block = model.encoder.layers.encoder_layer_0
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad(), record_attention(model) as weights:
        tokens = torch.cat([model.class_token, model.conv_proj(x).flatten(2).transpose(1, 2)], 1)
        y = block.ln_1(tokens + model.encoder.pos_embedding)
        model(x)
        q, k, _ = F.linear(y, block.self_attention.in_proj_weight, block.self_attention.in_proj_bias).chunk(3, -1)
        q = q.view(1, 65, 4, 12).transpose(1, 2)
        k = k.view(1, 65, 4, 12).transpose(1, 2)
        expected = torch.softmax(q @ k.transpose(-2, -1) / 12**0.5, dim=-1)
    torch.testing.assert_close(weights[0], expected, rtol=1e-5, atol=1e-6)


def test_pooled_embedding_is_the_class_token_or_the_patch_mean():
    x = torch.randn(2, 3, 32, 32)
    for pool in ("token", "mean"):
        model = tiny(pool=pool)
        with torch.no_grad():
            tokens = model.forward_features(x)
            emb = model.forward_head(tokens, pre_logits=True)
        expected = tokens[:, 0] if pool == "token" else tokens[:, 1:].mean(1)
        torch.testing.assert_close(emb, expected)


def test_representation_size_adds_torchvisions_pre_logits_layer():
    model = create_model("vit_b_32", image_size=64, representation_size=32, num_classes=5).eval()
    keys = [k for k in model.state_dict() if k.startswith("heads")]
    assert keys == ["heads.pre_logits.weight", "heads.pre_logits.bias", "heads.head.weight", "heads.head.bias"]
    with torch.no_grad():
        emb = model.forward_head(model.forward_features(torch.randn(2, 3, 64, 64)), pre_logits=True)
    assert emb.shape == (2, 32) and model.num_features == 32 and emb.abs().max() <= 1  # after tanh


def test_token_maps_keep_the_patch_layout():
    model = tiny()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        maps = feature_maps(model, x)
        patches = model.conv_proj(x)  # (1, D, 8, 8)
        tokens = torch.cat([model.class_token, patches.flatten(2).transpose(1, 2)], 1)
    assert list(maps) == ["patch_embed", "block1", "block2", "encoder"]
    assert maps["patch_embed"].shape == (1, 48, 8, 8) and maps["block1"].shape == (1, 65, 48)
    torch.testing.assert_close(patch_grid_map(model, tokens), patches)
    assert patch_grid_map(model, patches) is patches
    assert model.feature_names == ["patch_embed", "block1", "block2", "encoder"]
    big = create_model("vit_b_16", image_size=32)
    assert big.feature_names == ["patch_embed", "block3", "block6", "block9", "encoder"]


def test_stochastic_depth_only_in_training():
    model = tiny(stochastic_depth=0.5)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        model.eval()
        a, b = model(x), model(x)
        torch.testing.assert_close(a, b)
        model.train()
        torch.manual_seed(0)
        c = model(x)
        torch.manual_seed(1)
        d = model(x)
    assert (c - d).abs().max() > 0
    # rates grow linearly with depth, the first block is never dropped
    rates = [blk.stochastic_depth for blk in model.encoder.layers]
    assert rates == [0.0, 0.25, 0.5]
    assert list(model.state_dict()) == list(tiny().state_dict())


def test_position_embedding_interpolation_keeps_the_class_token_and_a_same_size_grid():
    pos = torch.randn(1, 1 + 16, 8)
    same = interpolate_pos_embedding(pos, (4, 4))
    torch.testing.assert_close(same, pos)
    bigger = interpolate_pos_embedding(pos, (6, 6))
    assert bigger.shape == (1, 37, 8)
    torch.testing.assert_close(bigger[:, 0], pos[:, 0])
    # align_corners=True: the grid's corners are kept exactly
    grid = pos[0, 1:].view(4, 4, 8)
    new = bigger[0, 1:].view(6, 6, 8)
    torch.testing.assert_close(new[0, 0], grid[0, 0])
    torch.testing.assert_close(new[-1, -1], grid[-1, -1])


def test_fine_tuning_a_checkpoint_for_another_size_and_class_count(tmp_path):
    source = create_model("vit_b_32", image_size=64)
    path = tmp_path / "vit.pth"
    atomic_torch_save(source.state_dict(), path)
    model = create_model("vit_b_32", image_size=96, num_classes=3, weights=str(path))
    assert model.encoder.pos_embedding.shape == (1, 10, 768)
    torch.testing.assert_close(model.conv_proj.weight, source.conv_proj.weight)
    assert model.get_classifier().out_features == 3


def test_mistakes_are_one_clear_error():
    model = tiny()
    with pytest.raises(ReslabError, match="takes 32x32 images.*image_size=64"):
        model(torch.randn(1, 3, 64, 64))
    with pytest.raises(ReslabError, match="not a multiple of the patch size 16"):
        create_model("vit_b_16", image_size=100)
    with pytest.raises(ReslabError, match="not divisible by num_heads"):
        create_model("vit_tiny_patch4_32", num_heads=5)
    with pytest.raises(ReslabError, match="unknown pool 'max'"):
        create_model("vit_tiny_patch4_32", pool="max")
    with pytest.raises(ReslabError, match="no attention layers"):
        with record_attention(create_model("resnet20")):
            pass
