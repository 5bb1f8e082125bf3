"""`reslab models`, `reslab profile`, `reslab explain` through the real entry point."""

from __future__ import annotations

import json

import pytest

from reslab import list_models
from reslab.cli import main


def run_cli(args, capsys) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as e:
        code = e.code or 0
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "bad,expected",
    [("3x22", "is not CxHxW"), ("abc", "is not CxHxW"), ("0x224x224", "positive"), ("3x8x8", "smallest square input it accepts is 3x32x32")],
)
def test_profile_with_a_bad_input_exits_1_with_one_line(bad, expected, capsys):
    code, out, err = run_cli(["profile", "vgg11", "--input", bad], capsys)
    assert code == 1
    assert expected in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2  # one sentence (rich may wrap it once)


def test_profile_json_with_options(capsys):
    code, out, _ = run_cli(["profile", "resnet50", "--option", "variant=v1", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["params"] == 25_557_032 and round(data["gmacs"], 2) == 3.86
    assert data["receptive_field"]["size"] == [483, 483]
    assert sum(r["macs"] for r in data["layers"]) == data["macs"]


def test_profile_unknown_option_is_a_user_error(capsys):
    code, _, err = run_cli(["profile", "resnet18", "-o", "depth=3"], capsys)
    assert code == 1 and "no option 'depth'" in err


def test_models_json_lists_every_registered_model(capsys):
    code, out, _ = run_cli(["models", "--json"], capsys)
    assert code == 0
    rows = json.loads(out)
    assert [r["name"] for r in rows] == list_models()
    assert all("error" not in r for r in rows), [r for r in rows if "error" in r]
    by_name = {r["name"]: r for r in rows}
    assert by_name["resnet18"]["params"] == 11_689_512
    assert by_name["resnet20"]["input_size"] == [3, 32, 32]


def test_explain_json(capsys):
    code, out, _ = run_cli(["explain", "--json"], capsys)
    assert code == 0
    titles = [s["title"] for s in json.loads(out)]
    assert any("Bottleneck" in t for t in titles) and any("Depthwise" in t for t in titles)
