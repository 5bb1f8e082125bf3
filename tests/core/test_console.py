"""Tables keep their first column whole at 80 columns; JSON is one document on stdout."""

from __future__ import annotations

import json

from reslab import console
from reslab.console import new_table, note, print_json, print_table


def test_names_and_numbers_are_never_cut_at_80_columns(capsys, monkeypatch):
    monkeypatch.setattr(console._stdout, "_width", 80)
    keys = ("P@1", "P@5", "P@10", "mAP", "queries")
    table = new_table("index", "method", *keys, title="retrieval", right=keys)
    rows = [("/data/photos-index-cnn", "cnn efficientnet_lite0 (imagenet) pooled"), ("idx-hog", "hog 9 orientations")]
    for index, method in rows:
        table.add_row(index, method, "0.812", "0.700", "0.651", "0.598", "1000")
    print_table(table)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "…" not in out and max(len(line) for line in lines) <= 80
    assert "/data/photos-index-cnn" in out and "queries" in out and out.count("0.812") == 2
    folded = "".join(line[26:].split()[0] for line in lines[3:] if len(line) > 26 and line[26:].strip())
    assert "efficientnet_lite0" in folded  # the long method wraps onto more lines, whole

    wide = new_table("name", *[f"metric{i}" for i in range(12)], right=tuple(f"metric{i}" for i in range(12)))
    wide.add_row("resnet50", *["123.456"] * 12)
    print_table(wide)  # too many numbers for 80 columns: printed wider, never cut
    out = capsys.readouterr().out
    assert "…" not in out and out.count("123.456") == 12 and "metric11" in out


def test_json_alone_on_stdout(capsys):
    print_json({"path": "caf\udce9.jpg", "n": 1})
    note("wrote x")
    out, err = capsys.readouterr()
    assert json.loads(out) == {"path": "caf\udce9.jpg", "n": 1} and "wrote x" in err
