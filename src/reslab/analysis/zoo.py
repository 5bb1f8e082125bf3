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


# plain twins share their residual nets' sizes: hollow, larger markers keep both visible
MARKERS = "osD^vP*Xph<>"


def plot_params_vs_macs(rows: list[dict], path):
    """Scatter of parameters against GMACs (log-log), one marker per family, labelled by name; writes a PNG.

    Models of (almost) the same size share one label ("plain20 / resnet20"), a family's `_bn` twins
    are named once ("vgg16 (+bn)"), and each label takes the first free spot around its point, so
    that none overlaps another label or a marker.
    """
    from ..plots import pyplot, save_figure

    plt = pyplot()
    rows = [r for r in rows if r.get("params") and r.get("macs")]
    fig, ax = plt.subplots(figsize=(12, 9.5))
    families = sorted({r["family"] for r in rows}, key=lambda f: ("plain" in f, f))
    colours = plt.get_cmap("tab10")
    for i, fam in enumerate(families):
        pts = [r for r in rows if r["family"] == fam]
        hollow = "plain" in fam  # drawn larger and on top: the residual twin stays visible inside
        ax.scatter([r["gmacs"] for r in pts], [r["params"] / 1e6 for r in pts], s=110 if hollow else 30,
                   marker=MARKERS[i % len(MARKERS)], label=fam, zorder=3 if hollow else 2,
                   facecolors="none" if hollow else colours(i % 10), edgecolors=colours(i % 10),
                   linewidths=1.4 if hollow else 0.5)  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("GMACs per image at the default input (conv + linear multiply-accumulates)")
    ax.set_ylabel("parameters (millions)")
    ax.set_title("reslab zoo: size against compute (hollow markers: plain nets, without shortcuts)")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="lower right", markerscale=0.8)
    fig.tight_layout()
    groups = _same_size_groups(rows)
    _place_labels(fig, ax, [((g[0]["gmacs"], g[0]["params"] / 1e6), _group_label(g)) for g in groups])
    return save_figure(fig, path)


def _same_size_groups(rows: list[dict]) -> list[list[dict]]:
    """Models within 3% of each other in both MACs and parameters: twins that sit on one spot."""
    groups: list[list[dict]] = []
    for r in sorted(rows, key=lambda r: r["name"]):
        for g in groups:
            if abs(g[0]["macs"] / r["macs"] - 1) < 0.03 and abs(g[0]["params"] / r["params"] - 1) < 0.03:
                g.append(r)
                break
        else:
            groups.append([r])
    return groups


def _group_label(group: list[dict]) -> str:
    names = [r["name"] for r in group]
    plain = [n for n in names if not n.endswith("_bn")]
    if plain and all(n[:-3] in plain for n in names if n not in plain):
        names = [f"{n} (+bn)" if f"{n}_bn" in names else n for n in plain]
    return " / ".join(names)


# label offsets from the point, in points: right, left, above, below, then the same further out
_SPOTS = [(dx * r, dy * r, ha) for r in (1, 2.2, 3.6, 5.2)
          for dx, dy, ha in ((5, 2, "left"), (-5, 2, "right"), (5, -9, "left"), (-5, -9, "right"),
                             (0, 7, "center"), (0, -15, "center"))]  # fmt: skip


def _place_labels(fig, ax, labels: list[tuple[tuple[float, float], str]]) -> None:
    """Greedy placement: each label at the first spot around its point where it overlaps no placed
    label, no marker and stays inside the axes (the least-overlapping spot when none is free); a thin
    leader line joins a label set further out to its point."""
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    markers = [ax.transData.transform(xy) for xy, _ in labels]
    placed = []
    def neighbours(own) -> int:  # markers within 60 px: the crowded labels choose their spot first
        return sum(1 for m in markers if 0 < ((m - own) ** 2).sum() < 60**2)

    for (xy, text), own in sorted(zip(labels, markers), key=lambda item: (-neighbours(item[1]), item[1][0])):
        best, best_cost = None, None
        for dx, dy, ha in _SPOTS:
            t = ax.annotate(text, xy, xytext=(dx, dy), textcoords="offset points", ha=ha, fontsize=7, zorder=4)
            box = t.get_window_extent(renderer).expanded(1.04, 1.15)
            cost = sum(_overlap(box, other) for other in placed)
            cost += sum(_overlap(box, _marker_box(m)) for m in markers if not (m == own).all())
            cost += box.width * box.height - _overlap(box, frame)  # the part outside the axes
            t.remove()
            if best_cost is None or cost < best_cost:
                best, best_cost = (dx, dy, ha, box), cost
            if cost == 0:
                break
        dx, dy, ha, box = best
        far = abs(dx) > 6 or abs(dy) > 16
        ax.annotate(text, xy, xytext=(dx, dy), textcoords="offset points", ha=ha, fontsize=7, zorder=4,
                    arrowprops=dict(arrowstyle="-", lw=0.4, color="0.6", shrinkA=0, shrinkB=4) if far else None)  # fmt: skip
        placed.append(box)


def _marker_box(centre, half: float = 5.0):
    from matplotlib.transforms import Bbox

    x, y = centre
    return Bbox.from_extents(x - half, y - half, x + half, y + half)


def _overlap(a, b) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0
