"""The one `key=value` parser and the one TOML writer.

Values on the command line (`--set optim.lr=0.05`, `--option shortcut=A`, `--param vocab_size=256`)
are TOML literals: numbers, booleans, quoted strings, arrays, inline tables; anything else (a
bare word such as `A`, `none` or a path) is that string.
What reslab writes as TOML (a run's resolved `config.toml`) reads back through `tomllib` unchanged.
"""

from __future__ import annotations

import math
import tomllib
from typing import Any, Iterable

from .errors import ReslabError


def parse_value(text: str) -> Any:
    """'0.05' -> 0.05, 'true' -> True, '[1, 2]' -> [1, 2], 'A' -> 'A'."""
    text = text.strip()
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_assignments(pairs: Iterable[str], option: str = "--set", example: str = "optim.lr=0.05") -> dict[str, Any]:
    """['a=1', 'b.c=x'] -> {'a': 1, 'b.c': 'x'}; a pair without '=' is one clear error naming `option`."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ReslabError(f"{option} '{pair}' is not key=value; write it like {option} {example}")
        out[key.strip()] = parse_value(value)
    return out


def toml_value(value: Any) -> str:
    """One TOML literal for a Python value (str, number, bool, list/tuple, dict)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return '"' + "".join(_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if _is_control(c) else c) for c in value) + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")


def dumps(tables: dict[str, dict[str, Any]]) -> str:
    """{'section': {'key': value}} as TOML text, one [section] table each."""
    lines: list[str] = []
    for section, values in tables.items():
        lines.append(f"[{_key(section)}]")
        lines.extend(f"{_key(k)} = {toml_value(v)}" for k, v in values.items())
        lines.append("")
    return "\n".join(lines)


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b", "\f": "\\f"}


def _is_control(c: str) -> bool:
    return ord(c) < 0x20 or ord(c) == 0x7F  # TOML strings may not hold these raw


def _key(name: str) -> str:
    bare = name and all(c.isalnum() or c in "-_" for c in name) and name.isascii()
    return name if bare else toml_value(str(name))
