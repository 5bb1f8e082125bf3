"""`reslab models`, `reslab profile MODEL`, `reslab explain`: the zoo, per-layer costs, design arithmetic."""

from __future__ import annotations

import json

import typer

from ..errors import ReslabError
from .app import app


@app.command()
def models(
    family: str = typer.Option(None, "--family", "-f", help="Only this family (resnet, plain, cifar, vgg, ...)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON to stdout instead of a table."),
) -> None:
    """The model zoo: every registered model with its parameters and GMACs at its default input."""
    from rich.console import Console
    from rich.table import Table

    from ..analysis.tables import human
    from ..analysis.zoo import zoo_summary

    rows = zoo_summary(family)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"reslab model zoo ({len(rows)} models)", caption="GMACs: conv + linear multiply-accumulates, torchvision's 'GFLOPS'")
    for col, justify in (("name", "left"), ("family", "left"), ("params", "right"), ("GMACs", "right"),
                         ("input", "right"), ("depth", "right"), ("weights", "left"), ("description", "left")):
        table.add_column(col, justify=justify, no_wrap=col != "description")
    for r in rows:
        table.add_row(
            r["name"],
            r["family"],
            human(r["params"]) if r["params"] is not None else "[red]error[/]",
            f"{r['gmacs']:.3f}" if r["gmacs"] is not None else "-",
            "x".join(map(str, r["input_size"])),
            str(r["depth"] or "-"),
            ", ".join(r["pretrained"]),
            r["description"] if "error" not in r else f"[red]{r['error']}[/]",
        )
    console = Console()
    Console(width=max(console.width, 130)).print(table)  # one line per model, even when piped


@app.command()
def profile(
    model: str = typer.Argument(..., help="A zoo model name (see `reslab models`)."),
    input: str = typer.Option(None, "--input", "-i", help="Input size CxHxW, e.g. 3x224x224 (default: the model's own)."),
    batch: int = typer.Option(1, help="Batch size (scales MACs and activation memory)."),
    per_layer: bool = typer.Option(False, "--per-layer", help="Also print one row per layer."),
    option: list[str] = typer.Option(None, "--option", "-o", help="Architecture option key=value, e.g. variant=v1 or shortcut=A; repeatable."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON to stdout (with every layer) instead of tables."),
) -> None:
    """Parameters, MACs, FLOPs, activation memory and receptive field of a zoo model, per layer and in total.

    Runs on the meta device: shapes only, so even VGG-19 or ResNet-1202 take a moment and no memory.
    """
    from rich.console import Console

    from ..analysis.profile import parse_input_size
    from ..analysis.tables import layer_table, summary_table
    from ..analysis.zoo import profile_by_name
    from ..models import model_entry

    entry = model_entry(model)
    size = parse_input_size(input, channels=entry.input_size[0]) if input else entry.input_size
    if batch < 1:
        raise ReslabError(f"--batch must be at least 1, got {batch}")
    result = profile_by_name(model, size, batch=batch, cross_check=True, **parse_options(option or []))
    if as_json:
        print(json.dumps(result.as_dict(), indent=2))
        return
    console = Console()
    if per_layer:  # wide enough for a row per layer on one line each, even when piped
        console = Console(width=max(console.width, 150))
        console.print(layer_table(result))
    console.print(summary_table(result))


@app.command()
def explain(as_json: bool = typer.Option(False, "--json", help="Print JSON to stdout instead of tables.")) -> None:
    """The design arithmetic behind ResNets and their neighbours, every figure counted on real modules."""
    from rich.console import Console

    from ..analysis.explain import explain_all, render

    sections = explain_all()
    if as_json:
        print(json.dumps([s.as_dict() for s in sections], indent=2))
        return
    render(sections, Console())


def parse_options(pairs: list[str]) -> dict:
    """['variant=v1', 'zero_init_residual=true'] -> {'variant': 'v1', 'zero_init_residual': True}."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ReslabError(f"option '{pair}' is not key=value; write it like --option variant=v1")
        options[key.strip()] = _parse_value(value.strip())
    return options


def _parse_value(text: str):
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text
