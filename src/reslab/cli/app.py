"""The typer application and its command groups; the area modules attach their commands to these."""

from __future__ import annotations

from typing import Annotated, Callable

import typer
import typer.core


class _Group(typer.core.TyperGroup):
    """A command group whose --help shows no type beside a flag.

    typer (0.29) prints `<bool>` beside every flag, `--help` and `--version` included, which reads
    as if the flag took a value. A flag's metavar is used nowhere else, so an empty one hides it.
    Every command is reached through its group's `get_command`, its help through `format_help`.
    """

    def get_command(self, ctx, cmd_name):
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _hide_flag_types(command, ctx)
        return command

    def format_help(self, ctx, formatter):
        _hide_flag_types(self, ctx)
        return super().format_help(ctx, formatter)


def _hide_flag_types(command, ctx) -> None:
    help_option = command.get_help_option(ctx)  # made on first use, then kept by the command
    for param in [*command.params, *([help_option] if help_option is not None else [])]:
        if getattr(param, "is_flag", False) and not getattr(param, "count", False):
            param.metavar = ""


app = typer.Typer(
    cls=_Group,
    name="reslab",
    help="Deep residual learning for image recognition: models, training, analysis, search.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)


# `reslab --help` lists commands in these panels, in this order
MODELS = "Models"
TRAINING = "Training"
SEARCH = "Similarity search"
IMAGES = "Images"
MORE = "Groups and tour"


def _group(name: str, help: str) -> typer.Typer:
    group = typer.Typer(cls=_Group, help=help, no_args_is_help=True, rich_markup_mode="rich")
    app.add_typer(group, name=name, rich_help_panel=MORE)
    return group


data_app = _group("data", "Datasets: check every image, write ready-made folders, preview augmentation.")
bench_app = _group("bench", "Benchmarks: speed and memory as ratios against a baseline measured in the same process.")
experiment_app = _group("experiment", "The ResNet paper's experiments, quick on a CPU (--quick) or the full recipe on GPUs.")
viz_app = _group("viz", "Look inside a network: feature maps, first-layer filters, attention rollout beside Grad-CAM.")
index_app = _group("index", "Similarity-search indexes: what one holds; copy one between stores (local folder, Milvus).")


def alias(group: typer.Typer, old_name: str, command: Callable, new_name: str) -> None:
    """Keep an old command name working, hidden from --help, pointing at its new name."""
    group.command(old_name, hidden=True, help=f"Old name of `reslab {new_name}`; see its --help.")(command)


def _version(value: bool) -> None:
    if not value:
        return
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from .. import __version__
    from ..console import say

    try:
        torch_version = version("torch")  # read from the metadata: importing torch takes seconds
    except PackageNotFoundError:
        torch_version = "not installed"
    say(f"reslab {__version__} (torch {torch_version}, Python {platform.python_version()})")
    raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Deep residual learning for image recognition: models, training, analysis, search."""
