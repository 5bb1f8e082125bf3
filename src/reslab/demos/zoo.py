"""Demo stage `zoo` (budget 60 s): the zoo's sizes and costs, the paper's depth-vs-cost point, and a
pretrained EfficientNet-Lite0 classifying scikit-image's sample photos."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from rich.console import Console

from ..console import new_table, print_table
from ..errors import ReslabError
from ..fileio import atomic_write_text

log = logging.getLogger(__name__)

# the paper's comparison (Table 1 and Sec. 4.1): deeper residual nets cost fewer MACs than VGG
COMPARE = ["vgg16", "plain50", "resnet50", "resnet152"]
# sample photos bundled with scikit-image (no download)
PHOTOS = ["chelsea", "coffee", "astronaut", "rocket"]


def run(out: Path, console: Console) -> None:
    from ..analysis.tables import human
    from ..analysis.zoo import plot_params_vs_macs, zoo_summary

    out.mkdir(parents=True, exist_ok=True)
    rows = zoo_summary()
    table = new_table("name", "family", "params", "GMACs", "input", "depth", right=("params", "GMACs", "input", "depth"),
                      title=f"the zoo: {len(rows)} models at their default input")  # fmt: skip
    for r in rows:
        table.add_row(
            r["name"], r["family"], human(r["params"]) if r["params"] else "error",
            f"{r['gmacs']:.3f}" if r["gmacs"] is not None else "-", "x".join(map(str, r["input_size"])), str(r["depth"] or "-"),
        )
    print_table(table, console=console)
    atomic_write_text(out / "zoo.json", json.dumps(rows, indent=2))
    plot = plot_params_vs_macs(rows, out / "zoo_params_vs_macs.png")
    console.print(f"zoo table: {out / 'zoo.json'}; plot: {plot}")

    comparison = compare_depth_and_cost(console)
    atomic_write_text(out / "depth_vs_cost.json", json.dumps(comparison, indent=2))

    predictions = classify_sample_photos(console)
    if predictions is not None:
        atomic_write_text(out / "lite0_predictions.json", json.dumps(predictions, indent=2))


def compare_depth_and_cost(console: Console) -> list[dict]:
    from ..analysis.tables import human_bytes
    from ..analysis.zoo import profile_by_name

    profiles = [profile_by_name(name) for name in COMPARE]
    names = [p.model_name for p in profiles]
    table = new_table("", *names, right=tuple(names), title="Depth is cheap with bottlenecks: ImageNet nets at 3x224x224")
    table.add_row("weighted layers", *[str(p.output_depth) for p in profiles])
    table.add_row("parameters", *[f"{p.params / 1e6:.1f}M" for p in profiles])
    table.add_row("GMACs", *[f"{p.macs / 1e9:.2f}" for p in profiles])
    table.add_row("receptive field", *[str(p.receptive_field.size[0]) for p in profiles])
    table.add_row("activations (batch 1)", *[human_bytes(p.activation_bytes) for p in profiles])
    print_table(table, console=console)
    by_name = {p.model_name: p for p in profiles}
    vgg, r50, r152 = by_name["vgg16"], by_name["resnet50"], by_name["resnet152"]
    console.print(
        f"ResNet-50 has {r50.output_depth / vgg.output_depth:.1f}x VGG-16's depth at {r50.macs / vgg.macs:.0%} of its MACs "
        f"and {r50.params / vgg.params:.0%} of its parameters; even ResNet-152 ({r152.macs / 1e9:.1f} GMACs) costs less "
        f"than VGG-16 ({vgg.macs / 1e9:.1f})."
    )
    plain = by_name["plain50"]
    projections = sum(r.macs for r in r50.layers if "downsample" in r.name or "shortcut" in r.name)
    console.print(
        f"plain-50 costs {(r50.macs - plain.macs) / 1e9:.3f} GMACs less than ResNet-50, and ResNet-50's projection "
        f"shortcuts cost {projections / 1e9:.3f}: the identity shortcuts themselves are free."
    )
    return [p.summary() for p in profiles]


def classify_sample_photos(console: Console) -> list[dict] | None:
    """Top-5 ImageNet labels from pretrained EfficientNet-Lite0; None (with a message) without its weights."""
    import skimage.data
    from PIL import Image

    from ..labels import imagenet_classes
    from ..models import create_model
    from ..predict import predict
    from ..preprocess import EvalPreprocess

    try:
        model = create_model("efficientnet_lite0", weights="imagenet")
    except ReslabError as e:
        console.print(f"[yellow]skipping the pretrained EfficientNet-Lite0 part:[/] {e}")
        return None
    names, images = [], []
    for name in PHOTOS:
        try:
            images.append(Image.fromarray(getattr(skimage.data, name)()).convert("RGB"))
            names.append(name)
        except Exception as e:  # a sample missing from this scikit-image install: use the others
            log.warning("scikit-image sample '%s' is unavailable: %s", name, e)
    top5 = predict(model, images, EvalPreprocess.for_model("efficientnet_lite0"), imagenet_classes(), top_k=5)
    table = new_table("photo", "top-5 (probability)", title="pretrained EfficientNet-Lite0 on scikit-image's photos: top-5")
    for name, preds in zip(names, top5):
        table.add_row(name, ", ".join(f"{label} ({p:.2f})" for label, p in preds))
    print_table(table, console=console)
    return [{"photo": n, "top5": [{"label": l, "probability": p} for l, p in preds]} for n, preds in zip(names, top5)]
