"""Command-line entry point: `reslab ...` and `python -m reslab ...`.

User errors (`ReslabError`) print one line and exit 1; no traceback.
"""

from __future__ import annotations

import importlib
import sys

from ..errors import ReslabError
from .app import app

# Command modules, each attaching its commands to `app` or a group in `.app`.
COMMAND_MODULES = ["models", "predict", "data", "train", "search", "web", "experiments", "report", "demo"]


def _load_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}")


def _setup_logging() -> None:
    # Library modules log through logging.getLogger(__name__); the CLI shows INFO and above.
    import logging

    from rich.console import Console
    from rich.logging import RichHandler

    # Logs on stderr, so that `--json` output on stdout can be piped.
    handler = RichHandler(console=Console(stderr=True), show_path=False, show_time=False, markup=False)
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[handler])


def main(argv: list[str] | None = None) -> None:
    _setup_logging()
    _load_commands()
    try:
        app(args=argv, prog_name="reslab")
    except ReslabError as e:
        from rich.console import Console

        Console(stderr=True).print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
