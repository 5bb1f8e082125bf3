"""Command-line entry point: `reslab ...` and `python -m reslab ...`.

Where a command goes
--------------------
One module per area; each attaches its commands to `app` or to a group made in `app.py`:

    models.py       models, profile, explain, export               (the zoo and its arithmetic)
    predict.py      predict                                         (classify images)
    data.py         data verify | digits | preview                  (datasets; `verify-data` is an old alias)
    train.py        train, eval-classifier, eval-ssl                (`eval` is an old alias)
    report.py       report, compare-runs                            (look at finished runs)
    search.py       embed, search, duplicates, eval-retrieval,      (similarity search over an index)
                    index info | copy
    images.py       compare-images, faces                           (two images, one photo; `compare` is an old alias)
    web.py          serve                                           (the search page)
    viz.py          viz features | filters | attention
    bench.py        bench data | train | embed | search | features | near-duplicates
    experiments.py  experiment degradation | cifar-depths | layer-responses | shortcuts | tricks |
                    gradient-flow | conv-vs-attention
    demo.py         demo

A new command joins the module of its area (or a new module listed in COMMAND_MODULES), takes
its options from `options.py` where one exists (`--device`, `--json`, `--batch-size`, `-k/--top-k`,
`--workers`, `--weights`, `--set`, `--seed`) and uses `typing.Annotated` with enums for choices.
Output goes through `reslab.console` (`say`, `note`, `print_json`, `print_table`): results on
stdout, everything else on stderr; a `--json` command prints exactly one JSON document.

Heavy imports (torch, numpy, faiss, the library's modules) happen inside the command function,
never at module level: `reslab --help` does not import torch (a test checks it).

User errors (`ReslabError`) print one line and exit 1; no traceback.
"""

from __future__ import annotations

import errno
import importlib
import sys

from ..errors import ReslabError
from .app import app

# The area modules, each attaching its commands to `app` or a group in `.app`.
COMMAND_MODULES = [
    "models", "predict", "data", "train", "report", "search", "images", "web", "viz", "bench", "experiments", "demo",
]  # fmt: skip


def _load_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}")


def _setup_logging() -> None:
    # Library modules log through logging.getLogger(__name__); the CLI shows INFO and above.
    import logging

    from rich.logging import RichHandler

    from ..console import stderr

    # Logs on stderr, so that `--json` output on stdout can be piped. INFO for reslab's own loggers
    # only: libraries' INFO chatter (FAISS reporting which CPU build it imported) is not for users.
    handler = RichHandler(console=stderr(), show_path=False, show_time=False, markup=False)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", handlers=[handler])
    logging.getLogger("reslab").setLevel(logging.INFO)


# a write failed for want of room: the disk or the user's quota is full, or the file system went read-only
OUT_OF_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def main(argv: list[str] | None = None) -> None:
    _setup_logging()
    _load_commands()
    try:
        app(args=argv, prog_name="reslab")
    except ReslabError as e:
        from rich.markup import escape

        from ..console import note, printable

        note(f"[bold red]error:[/] {escape(printable(str(e)))}")
        sys.exit(1)
    except KeyboardInterrupt as interrupt:
        _exit_interrupted(interrupt)
    except OSError as e:
        if e.errno not in OUT_OF_ROOM:
            raise
        from rich.markup import escape

        from ..console import note, printable

        where = f" writing {e.filename}" if e.filename else ""
        note(f"[bold red]error:[/] {escape(printable(f'{e.strerror}{where}'))}; make room (or write elsewhere) and run the "
             "command again: what was saved before this write is intact (a run continues with --resume)")
        sys.exit(1)
    except SystemExit as done:  # typer turns a KeyboardInterrupt into exit status 130, whatever the signal
        interrupt = _cause_of_type(done, KeyboardInterrupt)
        if interrupt is None:
            raise
        _exit_interrupted(interrupt)


def _exit_interrupted(interrupt: KeyboardInterrupt):
    from ..console import note
    from ..processes import exit_code_of, signal_name

    # 128 + the signal's number, as a shell reports a process ended by it: 130 Ctrl-C, 143 SIGTERM
    code = exit_code_of(interrupt)
    note(f"interrupted ({signal_name(code - 128)})")
    sys.exit(code)


def _cause_of_type(error: BaseException, kind: type) -> BaseException | None:
    seen = 0
    while error is not None and seen < 8:
        if isinstance(error, kind):
            return error
        error, seen = error.__cause__ or error.__context__, seen + 1
    return None
