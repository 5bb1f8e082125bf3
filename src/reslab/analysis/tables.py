"""Rich tables and number formatting for profiles and the zoo listing."""

from __future__ import annotations

from rich.table import Table

from .profile import Profile


def human(n: float, unit: str = "") -> str:
    """12_345_678 -> '12.35M'; keeps three or four significant figures."""
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= factor:
            return f"{n / factor:.2f}{suffix}{unit}"
    return f"{n:.0f}{unit}" if float(n).is_integer() else f"{n:.3g}{unit}"


def human_bytes(n: float) -> str:
    for factor, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n >= factor:
            return f"{n / factor:.1f} {suffix}"
    return f"{n:.0f} B"


def shape_str(shape) -> str:
    return "x".join(str(d) for d in shape)


def summary_table(profile: Profile, title: str | None = None) -> Table:
    rf = profile.receptive_field
    table = Table(title=title or f"{profile.model_name} at {shape_str(profile.input_size)}, batch {profile.batch}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_column("note", style="dim")
    table.add_row("parameters", f"{profile.params:,}", "used by the forward pass")
    if profile.params_total != profile.params:
        table.add_row("parameters (all)", f"{profile.params_total:,}", "including modules the eval forward skips")
    table.add_row("MACs", f"{profile.macs:,}", f"{profile.macs / 1e9:.3f} G: conv + linear (+ attention) multiply-accumulates")
    table.add_row("FLOPs", f"{profile.flops:,}", "2 x MACs")
    table.add_row("other FLOPs", f"{profile.other_flops:,}", "norms, activations, pools, additions")
    table.add_row("activations", human_bytes(profile.activation_bytes), "sum of layer outputs (in-place ones free)")
    if profile.global_from is not None:
        where = profile.global_from.rsplit(".", 1)[0]  # the module, without the op's name
        table.add_row("receptive field", "global", f"every token sees the whole image after {where}")
    else:
        table.add_row("receptive field", f"{rf.size[0]}x{rf.size[1]}" if rf else "-", "of the last feature map, input pixels")
        table.add_row("stride", f"{rf.jump[0]:g}" if rf else "-", "input pixels between its positions")
    table.add_row("depth", str(profile.output_depth), "conv/linear layers on the longest path (not attention's products)")
    return table


def layer_table(profile: Profile) -> Table:
    table = Table(title=f"{profile.model_name}: per layer")
    for name, justify in (
        ("layer", "left"),
        ("type", "left"),
        ("output", "right"),
        ("params", "right"),
        ("MACs", "right"),
        ("FLOPs", "right"),
        ("act. mem", "right"),
        ("RF /stride", "right"),
    ):
        table.add_column(name, justify=justify, no_wrap=True)
    for r in profile.layers:
        table.add_row(
            r.name,
            r.type,
            shape_str(r.output_shape),
            f"{r.params:,}" if r.params else "",
            human(r.macs) if r.macs else "",
            human(r.flops) if r.flops else "",
            human_bytes(r.activation_bytes) if r.activation_bytes else "in place",
            str(r.receptive_field) if r.receptive_field else "global",
        )
    return table
