"""Attention rollout (ViTs) beside Grad-CAM (CNNs): the arithmetic, the maps, the figure and the command."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from reslab.cli import main
from reslab.errors import ReslabError
from reslab.models import create_model
from reslab.models.vit import patch_grid_map, record_attention
from reslab.report.attention import attention_rollout, has_attention, rollout_matrix, saliency
from reslab.report.gradcam import grad_cam_batch


def tiny_vit(**options):
    torch.manual_seed(0)
    model = create_model("vit_tiny_patch4_32", num_layers=2, hidden_dim=32, num_heads=2, mlp_dim=64,
                         image_size=16, num_classes=3, **options).eval()
    with torch.no_grad():
        model.get_classifier().weight.normal_(0, 0.5)
    return model


def reference_rollout(weights: list[np.ndarray]) -> np.ndarray:
    """Abnar & Zuidema's recursion, written out with loops (one image)."""
    n = weights[0].shape[-1]
    result = np.eye(n)
    for w in weights:
        a = w.mean(axis=0) + np.eye(n)
        a = a / a.sum(axis=1, keepdims=True)
        result = a @ result
    return result


def test_rollout_matrix_matches_the_recursion_written_out():
    gen = torch.Generator().manual_seed(0)
    weights = [torch.softmax(torch.randn(1, 3, 5, 5, generator=gen), dim=-1) for _ in range(4)]
    ours = rollout_matrix(weights)[0].numpy()
    np.testing.assert_allclose(ours, reference_rollout([w[0].double().numpy() for w in weights]), rtol=1e-12)
    np.testing.assert_allclose(ours.sum(axis=1), np.ones(5), rtol=1e-12)  # still a mixing matrix


def test_rollout_follows_where_every_block_looks():
    # every token attends only to patch token 3 in both blocks: the class token's flow peaks there
    n = 5
    focus = torch.zeros(1, 2, n, n)
    focus[..., 3] = 1.0
    r = rollout_matrix([focus, focus])[0]
    assert r[0, 1:].argmax().item() == 2  # token 3 is the third patch
    assert r[0, 3] > 0.7
    with pytest.raises(ReslabError, match="no attention weights"):
        rollout_matrix([])


def test_rollout_maps_come_from_the_recorded_weights():
    model = tiny_vit()
    x = torch.randn(2, 3, 16, 16)
    maps = attention_rollout(model, x)
    assert maps.shape == (2, 16, 16) and maps.dtype == np.float32
    assert maps.min() == 0.0 and maps.max() == pytest.approx(1.0)
    with torch.no_grad(), record_attention(model) as weights:
        model(x)
    flow = rollout_matrix(weights)[:, 0, 1:].float().reshape(2, 1, 4, 4)
    expected = F.interpolate(flow, size=(16, 16), mode="bilinear", align_corners=False)[:, 0]
    expected = (expected - expected.amin((1, 2), keepdim=True)) / (expected.amax((1, 2), keepdim=True) - expected.amin((1, 2), keepdim=True))
    np.testing.assert_allclose(maps, expected.numpy(), atol=1e-6)
    assert not model.training  # the mode is restored


def test_mean_pooled_vits_roll_out_the_patch_tokens():
    model = tiny_vit(pool="mean")
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad(), record_attention(model) as weights:
        model(x)
    flow = rollout_matrix(weights)[0, 1:, 1:].mean(0)
    maps = attention_rollout(model, x)
    coarse = maps[0, 2::4, 2::4]  # near the centre of each 4x4 patch
    assert np.unravel_index(coarse.argmax(), coarse.shape) == np.unravel_index(flow.argmax().item(), (4, 4))


def test_grad_cam_of_a_vit_uses_its_patch_tokens():
    model = tiny_vit()
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(3))

    last = model.encoder.layers[-1]

    def by_hand(k: int) -> torch.Tensor:
        # the gradient of class k's logit with respect to the tokens entering the last block
        # (normalised by its ln_1), both on the patch grid: the final patch tokens' gradient is zero
        captured = []
        handle = last.ln_1.register_forward_hook(lambda m, i, o: captured.append(o))
        logits = model(x.clone().requires_grad_(True))
        handle.remove()
        (grads,) = torch.autograd.grad(logits[0, k], captured[0])
        a, g = patch_grid_map(model, captured[0].detach()), patch_grid_map(model, grads)
        cam = F.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(1, keepdim=True))
        return F.interpolate(cam, size=(16, 16), mode="bilinear", align_corners=False)[0, 0]

    k = max(range(3), key=lambda c: by_hand(c).sum().item())  # a class with positive evidence somewhere
    cam = by_hand(k)
    assert cam.max() > 0
    cams, classes = grad_cam_batch(model, x, target_classes=[k])
    np.testing.assert_allclose(cams[0], (cam / cam.max()).numpy(), atol=1e-5)
    assert classes == [k]


def test_saliency_picks_the_method_by_architecture():
    vit, cnn = tiny_vit(), create_model("resnet20", num_classes=3).eval()
    assert has_attention(vit) and not has_attention(cnn)
    assert saliency(vit, torch.randn(1, 3, 16, 16))[1] == "attention rollout"
    assert saliency(cnn, torch.randn(1, 3, 16, 16))[1] == "Grad-CAM"


def test_viz_attention_draws_a_vit_beside_a_cnn(tmp_path, capsys):
    images = []
    for i, colour in enumerate([(200, 30, 30), (30, 200, 30)]):
        a = np.full((40, 40, 3), 60, np.uint8)
        a[5:20, 5:20] = colour
        path = tmp_path / f"{i}.png"
        Image.fromarray(a).save(path)
        images.append(str(path))
    out = tmp_path / "att.png"
    with pytest.raises(SystemExit) as done:  # typer exits 0 on success
        main(["viz", "attention", "vit_tiny_patch4_32", *images, "--compare", "resnet20", "--out", str(out), "--device", "cpu"])
    assert done.value.code == 0
    assert "wrote" in capsys.readouterr().out
    figure = Image.open(out)
    assert figure.size[0] > 300 and figure.size[1] > 300
    with pytest.raises(SystemExit) as exit_info:
        main(["viz", "attention", "vit_tiny_patch4_32", str(tmp_path / "missing.png"), "--out", str(out)])
    assert exit_info.value.code == 1
    assert "missing.png" in capsys.readouterr().err


def test_the_report_of_a_vit_run_shows_rollout_beside_grad_cam(colour_data, tmp_path):
    from reslab.report.html import report_run
    from reslab.train import fit, load_config

    config = load_config(None, [
        f'data.path="{colour_data}"', "data.image_size=16", "data.workers=0", "model.name=vit_tiny_patch4_32",
        "model.options={image_size = 16, num_layers = 2, hidden_dim = 32, num_heads = 2, mlp_dim = 64}",
        "train.epochs=1", "train.batch_size=16", "train.device=cpu", "optim.name=adamw", "optim.lr=0.001",
        f'run.dir="{tmp_path}"', "run.name=vit", "run.progress=false", "run.tensorboard=false",
    ])
    run = fit(config).run_dir
    page = report_run(run, out=tmp_path / "report.html").read_text()
    assert "Attention rollout and Grad-CAM" in page and "attention rollout and Grad-CAM heatmaps" in page
