"""Look inside a network: `reslab viz features | filters | attention`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .app import viz_app
from .options import Device, ModelOrRun, Weights


@viz_app.command("features")
def features(
    model: ModelOrRun,
    image: Annotated[Path, typer.Argument(help="The image to look at.")],
    layer: Annotated[str, typer.Option(help="The stage whose feature maps to draw (the model's feature_names).")] = "layer1",
    weights: Weights = None,
    top: Annotated[int, typer.Option(min=1, help="How many of the most active channels to draw.")] = 16,
    out: Annotated[Optional[Path], typer.Option(help="PNG to write (default features-<layer>.png).")] = None,
    device: Device = "auto",
) -> None:
    """Draw the most active feature maps of one image at one stage."""
    from ..console import say
    from ..devices import resolve_device
    from ..imageio import load_image
    from ..report.evaluation import display_image
    from ..inference import load
    from ..viz import plot_feature_maps

    dev = resolve_device(device)
    loaded = load(model, weights, device=dev)
    net, preprocess = loaded.torch_network("drawing feature maps needs"), loaded.preprocess
    img = load_image(image, mode="RGB", min_size=preprocess.resize)
    x = preprocess(img).to(dev)
    path = plot_feature_maps(net, x, layer, out or Path(f"features-{layer}.png"),
                             image=display_image(x.cpu(), preprocess.mean, preprocess.std), top=top)  # fmt: skip
    say(f"wrote {path}", markup=False)


@viz_app.command("filters")
def filters(
    model: ModelOrRun,
    weights: Weights = None,
    out: Annotated[Path, typer.Option(help="PNG to write.")] = Path("filters.png"),
) -> None:
    """Draw the first convolution's filters."""
    from ..console import say
    from ..inference import load
    from ..viz import plot_first_layer_filters

    net = load(model, weights).torch_network("drawing filters needs")
    say(f"wrote {plot_first_layer_filters(net, out)}", markup=False)


@viz_app.command("attention")
def attention(
    model: ModelOrRun,
    images: Annotated[list[Path], typer.Argument(help="One or more images to look at.")],
    compare: Annotated[
        Optional[list[str]],
        typer.Option("--compare", "-c", help="Another model or run to draw beside it (repeatable), e.g. a CNN's run."),
    ] = None,
    weights: Weights = None,
    out: Annotated[Path, typer.Option(help="PNG to write.")] = Path("attention.png"),
    device: Device = "auto",
) -> None:
    """Where networks look: attention rollout for a ViT, Grad-CAM for a CNN, side by side.

    `--weights` applies to MODEL when it is a zoo name; runs given to --compare carry their own.
    """
    from ..console import say
    from ..devices import resolve_device
    from ..imageio import load_image
    from ..inference import load
    from ..viz import plot_saliency

    dev = resolve_device(device)
    nets = []
    for i, spec in enumerate([model, *(compare or [])]):
        loaded = load(spec, weights if i == 0 else None, device=dev)
        net = loaded.torch_network("drawing where a network looks needs")
        nets.append((_title(spec) if loaded.kind != "zoo" else spec, net, loaded.preprocess, loaded.classes))
    biggest = max(p.resize for _, _, p, _ in nets)
    pictures = [load_image(path, mode="RGB", min_size=biggest) for path in images]
    say(f"wrote {plot_saliency(nets, pictures, out, device=dev)}", markup=False)


def _title(spec: str) -> str:
    """A column title: a zoo name as it is, a run folder's name, a checkpoint with its run's (runs/vit/checkpoints/last.pt -> vit/last.pt)."""
    path = Path(spec)
    if not path.exists():
        return spec
    if path.is_file() and path.parent.name == "checkpoints":
        return f"{path.parent.parent.name}/{path.name}"
    return path.name
