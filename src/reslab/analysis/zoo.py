"""Profiles of zoo models by name, built on the meta device so that nothing is allocated."""

from __future__ import annotations

import logging

import torch

from ..errors import ReslabError
from ..models import create_model, list_models, model_entry
from .ops import skip_meta_init
from .profile import Profile, profile_model

log = logging.getLogger(__name__)


def profile_by_name(
    name: str,
    input_size: tuple[int, int, int] | None = None,
    batch: int = 1,
    cross_check: bool = False,
    **options,
) -> Profile:
    """Build zoo model `name` (with architecture `options`, e.g. variant="v1") on meta and profile it.

    input_size defaults to the model's own (3x224x224 for ImageNet nets, 3x32x32 for CIFAR ones, a
    ViT's image_size).
    """
    entry = model_entry(name)
    with torch.device("meta"), skip_meta_init():
        model = create_model(name, **options)
    own = getattr(model, "image_size", None)  # a ViT built for another size (image_size=384) takes only that
    size = tuple(input_size or ((entry.input_size[0], own, own) if own else entry.input_size))
    if size[0] != entry.input_size[0]:
        raise ReslabError(f"{name} takes {entry.input_size[0]}-channel images, not {size[0]}; use an input like {entry.input_size[0]}x{size[1]}x{size[2]}")
    profile = profile_model(model, size, batch=batch, cross_check=cross_check)
    profile.model_name = name
    return profile


def zoo_summary(family: str | None = None) -> list[dict]:
    """One dict per registered model: name, family, params, MACs at its default input, description.

    A model that fails to build or run is listed with its error rather than hiding the rest of the zoo.
    """
    names = list_models(family)
    if not names:
        families = sorted({model_entry(n).family for n in list_models()})
        raise ReslabError(f"no models in family '{family}'; families are: {', '.join(families)}")
    rows = []
    for name in names:
        entry = model_entry(name)
        row = {
            "name": name,
            "family": entry.family,
            "input_size": list(entry.input_size),
            "num_classes": entry.num_classes,
            "pretrained": sorted(entry.pretrained),
            "description": entry.description,
        }
        try:
            p = profile_by_name(name)
            row.update(params=p.params, macs=p.macs, gmacs=p.macs / 1e9, depth=p.output_depth)
            rf = p.receptive_field
            row["receptive_field"] = rf.size[0] if rf else None
        except Exception as e:  # one broken model must not hide the zoo; the error is shown in its row
            log.warning("could not profile %s: %s", name, e)
            row.update(params=None, macs=None, gmacs=None, depth=None, receptive_field=None, error=str(e))
        rows.append(row)
    return rows


def plot_params_vs_macs(rows: list[dict], path):
    """Scatter of parameters against GMACs (log-log), one colour per family, labelled by name; writes a PNG."""
    import matplotlib

    if matplotlib.get_backend().lower() != "agg":  # headless: never look for a display
        matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from ..plots import save_figure

    rows = [r for r in rows if r.get("params") and r.get("macs")]
    fig, ax = plt.subplots(figsize=(9, 6.5))
    families = sorted({r["family"] for r in rows})
    colours = plt.get_cmap("tab10")
    for i, fam in enumerate(families):
        pts = [r for r in rows if r["family"] == fam]
        ax.scatter([r["gmacs"] for r in pts], [r["params"] / 1e6 for r in pts], s=28, color=colours(i % 10), label=fam)
    # twins (resnet20 / plain20, vgg16 / vgg16_bn) sit on one spot: one label for each group
    groups: list[list[dict]] = []
    for r in sorted(rows, key=lambda r: r["name"]):
        for g in groups:
            if abs(g[0]["macs"] / r["macs"] - 1) < 0.03 and abs(g[0]["params"] / r["params"] - 1) < 0.03:
                g.append(r)
                break
        else:
            groups.append([r])
    for g in groups:
        label = " / ".join(r["name"] for r in g)
        ax.annotate(label, (g[0]["gmacs"], g[0]["params"] / 1e6), fontsize=6.5, xytext=(3, 2), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("GMACs per image at the default input (conv + linear multiply-accumulates)")
    ax.set_ylabel("parameters (millions)")
    ax.set_title("reslab zoo: size against compute")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="lower right")
    return save_figure(fig, path)
