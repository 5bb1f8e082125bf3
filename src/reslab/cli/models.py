"""The zoo and its arithmetic: `reslab models`, `profile`, `explain`, `export`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .app import MODELS, app
from .options import JsonOutput, ModelName, ModelOrRun, Weights


@app.command(rich_help_panel=MODELS)
def models(
    family: Annotated[
        Optional[str], typer.Option("--family", "-f", help="Only this family (resnet, plain, cifar, vgg, ...).")
    ] = None,
    as_json: JsonOutput = False,
) -> None:
    """The model zoo: every registered model with its parameters and GMACs at its default input."""
    from ..analysis.tables import human
    from ..analysis.zoo import zoo_summary
    from ..console import new_table, print_json, print_table

    rows = zoo_summary(family)
    if as_json:
        print_json(rows)
        return
    table = new_table("name", "family", "params", "GMACs", "input", "depth", "weights", "description",
                      title=f"reslab model zoo ({len(rows)} models)", right=("params", "GMACs", "input", "depth"),
                      caption="GMACs: conv + linear multiply-accumulates, torchvision's 'GFLOPS'")  # fmt: skip
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
    print_table(table, min_width=130)  # one line per model, even when piped


@app.command(rich_help_panel=MODELS)
def profile(
    model: ModelName,
    input: Annotated[
        Optional[str], typer.Option("--input", "-i", help="Input size CxHxW, e.g. 3x224x224 (default: the model's own).")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Batch size (scales MACs and activation memory).")] = 1,
    per_layer: Annotated[bool, typer.Option("--per-layer", help="Also print one row per layer.")] = False,
    option: Annotated[
        Optional[list[str]],
        typer.Option("--option", "-o", help="Architecture option key=value, e.g. variant=v1 or shortcut=A; repeatable."),
    ] = None,
    as_json: JsonOutput = False,
) -> None:
    """Parameters, MACs, FLOPs, activation memory and receptive field of a zoo model, per layer and in total.

    Runs on the meta device: shapes only, so even VGG-19 or ResNet-1202 take a moment and no memory.
    """
    from ..analysis.profile import parse_input_size
    from ..analysis.tables import layer_table, summary_table
    from ..analysis.zoo import profile_by_name
    from ..console import print_json, print_table
    from ..models import model_entry
    from ..tomlio import parse_assignments

    entry = model_entry(model)
    size = parse_input_size(input, channels=entry.input_size[0]) if input else None  # None: the model's own
    options = parse_assignments(option or [], option="--option", example="variant=v1")
    result = profile_by_name(model, size, batch=batch_size, cross_check=True, **options)
    if as_json:
        print_json(result.as_dict())
        return
    if per_layer:  # wide enough for a row per layer on one line each, even when piped
        print_table(layer_table(result), min_width=150)
    print_table(summary_table(result))


@app.command(rich_help_panel=MODELS)
def explain(as_json: JsonOutput = False) -> None:
    """The design arithmetic behind ResNets and their neighbours, every figure counted on real modules."""
    from ..analysis.explain import explain_all, render
    from ..console import print_json, stdout

    sections = explain_all()
    if as_json:
        print_json([s.as_dict() for s in sections])
        return
    render(sections, stdout())


@app.command(rich_help_panel=MODELS)
def export(
    model: ModelOrRun,
    out: Annotated[Optional[Path], typer.Option(help="The .onnx file to write.")] = None,
    weights: Weights = None,
    # the spellings before the shared vocabulary and the one loader, kept working: `--onnx PATH` (a flag
    # elsewhere: run with ONNX Runtime), `--run FOLDER` (a run folder is now a MODEL), and
    # `--embedding-head` / `--embedding` (every export now carries both outputs, embeddings and logits)
    old_onnx: Annotated[Optional[Path], typer.Option("--onnx", hidden=True)] = None,
    old_run: Annotated[Optional[Path], typer.Option("--run", hidden=True)] = None,
    old_embedding_head: Annotated[bool, typer.Option("--embedding-head", hidden=True)] = False,
    old_embedding: Annotated[bool, typer.Option("--embedding", hidden=True)] = False,
) -> None:
    """Export a model to ONNX: outputs "embeddings" (pooled features) and "logits", dynamic batch, with its
    preprocessing and class names inside, so `reslab predict/embed FILE.onnx` use it as they are."""
    from ..console import say
    from ..inference import default_weights, load
    from ..inference.export import export_onnx_file
    from ..models import list_models

    out = out or old_onnx
    if out is None:
        raise typer.BadParameter("give the file to write, e.g. --out model.onnx", param_hint="--out")
    if old_run is not None:
        model = str(old_run)
    if weights is None and model in list_models():
        weights = default_weights(model)
    loaded = load(model, weights)
    path, diff = export_onnx_file(loaded, out)
    say(f"wrote {path} ({loaded.source}); ONNX Runtime vs PyTorch max abs diff {diff:.2e}", markup=False)
