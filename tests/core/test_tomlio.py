"""The one key=value parser and TOML writer: what --set, --option and config.toml go through."""

from __future__ import annotations

import math
import tomllib

import pytest

from reslab.errors import ReslabError
from reslab.tomlio import dumps, parse_assignments, parse_value, toml_value


@pytest.mark.parametrize(
    "text, value",
    [("0.05", 0.05), ("64e3", 64000.0), ("10", 10), ("true", True), ("[8, 11]", [8, 11]), ('"a b"', "a b"),
     ("{shortcut = 'B'}", {"shortcut": "B"}), ("A", "A"), ("none", "none"), ("/data/x y", "/data/x y"), ("", "")],
)  # fmt: skip
def test_values_are_toml_literals_and_bare_words_strings(text, value):
    assert parse_value(text) == value


def test_assignments_and_one_clear_error():
    assert parse_assignments(["optim.lr=0.1", " model.name = resnet56 ", "data.path=a=b"]) == {
        "optim.lr": 0.1, "model.name": "resnet56", "data.path": "a=b"}  # fmt: skip
    with pytest.raises(ReslabError, match=r"--option 'variant' is not key=value; write it like --option variant=v1"):
        parse_assignments(["variant"], option="--option", example="variant=v1")
    with pytest.raises(ReslabError, match="not key=value"):
        parse_assignments(["=3"])


def test_writer_round_trips_through_tomllib():
    tables = {"data": {"path": 'C:\\photos\\"new"\n\tbatch', "mean": (0.5, 0.25), "n": 3, "on": False},
              "model": {"options": {"shortcut": "A", "odd key": 1}}, "x": {"inf": math.inf, "big": 1e300}}  # fmt: skip
    back = tomllib.loads(dumps(tables))
    assert back["data"] == {"path": 'C:\\photos\\"new"\n\tbatch', "mean": [0.5, 0.25], "n": 3, "on": False}
    assert back["model"]["options"] == {"shortcut": "A", "odd key": 1} and back["x"] == {"inf": math.inf, "big": 1e300}
    assert math.isnan(tomllib.loads(f"v = {toml_value(math.nan)}")["v"])
    with pytest.raises(TypeError):
        toml_value(object())
