"""What reslab prints, in one place: results on stdout, everything else on stderr.

- `say(text)`: a line of result on stdout (markup allowed, no colour guessing, long paths kept whole);
- `note(text)`: a side line on stderr ("wrote ...", "chose ..."), so that stdout stays pipeable;
- `print_json(data)`: the one JSON document of a `--json` command (pretty, sorted as given);
- `new_table(...)` / `print_table(table)`: rich tables whose names and numbers are never cut (no "meth…");
- `stdout()` / `stderr()`: the consoles themselves, for progress bars and rules.

Library code that reports progress uses `stderr()`; commands use the rest.
"""

from __future__ import annotations

import io
import json
import os
import sys
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

FIRST_COLUMN_MAX = 48  # characters: a first column is kept whole up to this width



class _EscapingStream:
    """The console's stream, writing what its encoding cannot hold as escapes instead of raising.

    A name that is not UTF-8 (held by Python as surrogate escapes) reaches a strict UTF-8 stdout
    (a UTF-8 locale, a pipe, pytest) through any message nobody passed through `printable`; it
    must print as \\xNN, not end the command with a UnicodeEncodeError (and rich, failing
    mid-write, would keep the line in its buffer and fail again on every later print)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except UnicodeEncodeError:  # raised while encoding, before anything is written
            encoding = getattr(self._stream, "encoding", None) or "utf-8"
            return self._stream.write(_undecodable_escaped(text).encode(encoding, "backslashreplace").decode(encoding))

    def __getattr__(self, name):  # flush, isatty, fileno, encoding: the stream's own
        return getattr(self._stream, name)


class _Console(Console):
    @property
    def file(self):
        return _EscapingStream(Console.file.fget(self))

    @file.setter
    def file(self, new_file) -> None:
        Console.file.fset(self, new_file)


# file=None: each print goes to the current sys.stdout / sys.stderr (a redirect, pytest's capture)
_stdout = _Console(highlight=False)
_stderr = _Console(stderr=True, highlight=False)


def _undecodable_escaped(text: str) -> str:
    """Bytes that are not UTF-8 (held by Python as surrogate escapes) as \\xNN; other text unchanged."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") if _only_escapes(text) \
            else text.encode("utf-8", "backslashreplace").decode("utf-8")


def _only_escapes(text: str) -> bool:
    """Every surrogate in `text` is one of the escapes that stand for an undecodable byte (U+DC80..U+DCFF)."""
    return all(not 0xD800 <= ord(c) <= 0xDFFF or 0xDC80 <= ord(c) <= 0xDCFF for c in text)


def printable(name: Any) -> str:
    """A file name, path or label as text that prints, and goes into markup and JSON, anywhere:
    bytes that are not UTF-8 (a disk written by another system) become \\xNN and control
    characters (a newline in a name) their escapes. For display only: the name itself is kept
    exactly where it is stored. Still escape it for rich markup (`rich.markup.escape`)."""
    text = _undecodable_escaped(os.fspath(name) if isinstance(name, os.PathLike) else str(name))
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


def print_table(table: Table, min_width: int = 0, console: Console | None = None) -> None:
    """Print a table whose names and numbers are never cut: the first column (names) and every
    right-aligned column (numbers) keep their full width; other text columns wrap. A table that
    still does not fit the terminal loses its box, then is printed wider rather than cut.

    `min_width`: lay the table out at least this wide even when stdout is narrower or a pipe
    (one line per row for wide listings such as the zoo). `console`: another console than stdout's.
    """
    import rich.box
    from rich.measure import Measurement

    for i, column in enumerate(table.columns):
        longest = max([_cell_len(column.header), *(_cell_len(c) for c in column._cells)])
        if i == 0 or column.justify == "right":
            column.min_width = min(FIRST_COLUMN_MAX, longest) if i == 0 else longest
            column.no_wrap = True
        else:
            column.min_width = min(longest, 12)
            column.overflow = "fold"
    console = console or _stdout
    width = max(min_width, console.width)
    measure = Console(highlight=False, width=10_000)

    def needed() -> int:
        return Measurement.get(measure, measure.options, table).minimum

    if needed() > width:
        table.box, table.show_edge = rich.box.SIMPLE_HEAD, False
    wrapping = [c for i, c in enumerate(table.columns) if i > 0 and c.justify != "right"]
    if needed() > width and wrapping:  # share what the names and numbers leave among the text columns
        for column in wrapping:
            column.min_width, column.max_width = 1, 1
        share = max(8, (width - needed()) // len(wrapping) + 1)
        for column in wrapping:
            column.min_width, column.max_width = min(share, 12), share
    if needed() > width or min_width > console.width:
        buffer = io.StringIO()  # laid out wider than the console, then written through it
        Console(file=buffer, highlight=False, width=max(needed(), min_width), force_terminal=console.is_terminal,
                color_system=console.color_system).print(table)  # fmt: skip
        console.out(buffer.getvalue(), end="", highlight=False)
    else:
        console.print(table)


def _cell_len(cell) -> int:
    return Text.from_markup(cell).cell_len if isinstance(cell, str) else 0
