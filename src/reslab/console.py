"""What reslab prints, in one place: results on stdout, everything else on stderr.

- `say(text)`: a line of result on stdout (markup allowed, no colour guessing, long paths kept whole);
- `note(text)`: a side line on stderr ("wrote ...", "chose ..."), so that stdout stays pipeable;
- `print_json(data)`: the one JSON document of a `--json` command (pretty, sorted as given);
- `new_table(...)` / `print_table(table)`: rich tables whose first column is never cut to "meth…";
- `stdout()` / `stderr()`: the consoles themselves, for progress bars and rules.

Library code that reports progress uses `stderr()`; commands use the rest.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

FIRST_COLUMN_MAX = 48  # characters: a first column is kept whole up to this width

# file=None: each print goes to the current sys.stdout / sys.stderr (a redirect, pytest's capture)
_stdout = Console(highlight=False)
_stderr = Console(stderr=True, highlight=False)


def printable(name: Any) -> str:
    """A file name, path or label as text that prints, and goes into markup and JSON, anywhere:
    bytes that are not UTF-8 (a disk written by another system) become \\xNN and control
    characters (a newline in a name) their escapes. For display only: the name itself is kept
    exactly where it is stored. Still escape it for rich markup (`rich.markup.escape`)."""
    text = os.fspath(name) if isinstance(name, os.PathLike) else str(name)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes, held by Python as surrogate escapes
        text = os.fsencode(text).decode("utf-8", "backslashreplace")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def shown(name: Any) -> str:
    """`printable(name)` with rich markup escaped, for `say`, `note` and table cells."""
    from rich.markup import escape

    return escape(printable(name))


def stdout() -> Console:
    return _stdout


def stderr() -> Console:
    return _stderr


def say(text: Any = "", **kwargs) -> None:
    """A line of result on stdout; long lines (paths) are not wrapped mid-word."""
    stdout().print(text, soft_wrap=True, **kwargs)


def note(text: Any = "", **kwargs) -> None:
    """A side line on stderr: what was written, what was chosen, what was skipped."""
    stderr().print(text, soft_wrap=True, **kwargs)


def wrote(*paths) -> None:
    for p in paths:
        note(f"wrote {p}")


def print_json(data: Any) -> None:
    """The one JSON document of a `--json` command: indented, ASCII-safe (any file name survives)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def new_table(*columns: str, title: str | None = None, caption: str | None = None, right: tuple[str, ...] = ()) -> Table:
    """A table with these column names; the ones in `right` are right-aligned (numbers)."""
    table = Table(title=title, caption=caption)
    for name in columns:
        table.add_column(name, justify="right" if name in right else "left")
    return table


def print_table(table: Table, min_width: int = 0) -> None:
    """Print a table, keeping its first column whole (names) and wrapping the others if narrow.

    `min_width`: lay the table out at least this wide even when stdout is narrower or a pipe
    (one line per row for wide listings such as the zoo).
    """
    first = table.columns[0] if table.columns else None
    if first is not None:
        cells = [Text.from_markup(c).cell_len if isinstance(c, str) else 0 for c in first._cells]
        header = len(str(first.header))
        first.min_width = min(FIRST_COLUMN_MAX, max([header, *cells]))
        first.no_wrap = True
    if min_width and _stdout.width < min_width:
        Console(highlight=False, width=min_width).print(table)
    else:
        _stdout.print(table)
