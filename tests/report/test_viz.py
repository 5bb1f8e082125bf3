"""Feature maps and first-layer filters (reslab.viz), via the API and the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from reslab.cli import main
from reslab.errors import ReslabError
from reslab.models import create_model
from reslab.viz import first_conv, plot_first_layer_filters, top_channel_maps


def test_top_channels_are_the_most_active_ones():
    torch.manual_seed(0)
    model = create_model("resnet20").eval()
    x = torch.randn(3, 32, 32)
    maps, order = top_channel_maps(model, x, "layer2", top=5)
    assert maps.shape == (5, 16, 16)
    # oracle: layer2's output computed by hand, channels ranked by mean activation
    with torch.no_grad():
        full = model.layer2(model.layer1(torch.relu(model.bn1(model.conv1(x[None])))))[0]
    expected = full.mean(dim=(1, 2)).argsort(descending=True)[:5].tolist()
    assert order == expected
    assert np.allclose(maps, full[expected].numpy(), atol=1e-5)


def test_unknown_stage_names_the_stages():
    with pytest.raises(ReslabError, match="layer1, layer2"):
        top_channel_maps(create_model("resnet20"), torch.zeros(3, 32, 32), "layer7")


def test_filters_png_and_cli(tmp_path, capsys):
    model = create_model("resnet20")
    assert first_conv(model).weight.shape == (16, 3, 3, 3)
    path = plot_first_layer_filters(model, tmp_path / "f.png")
    with Image.open(path) as im:
        assert np.asarray(im.convert("L"), dtype=float).std() > 10
    image = tmp_path / "in.png"
    Image.fromarray((np.random.default_rng(0).random((40, 48, 3)) * 255).astype(np.uint8)).save(image)
    with pytest.raises(SystemExit) as done:  # typer exits 0 on success
        main(["viz", "features", "resnet20", str(image), "--layer", "layer1", "--top", "4", "--out", str(tmp_path / "m.png")])
    assert done.value.code == 0
    assert (tmp_path / "m.png").stat().st_size > 3000
    with pytest.raises(SystemExit) as failed:
        main(["viz", "filters", str(tmp_path / "missing-run.pt")])
    assert failed.value.code == 1
    assert "does not exist" in capsys.readouterr().err
