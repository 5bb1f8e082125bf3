"""Tables keep their first column whole at 80 columns; JSON is one document on stdout."""

from __future__ import annotations

import json

from reslab.console import new_table, note, print_json, print_table


def test_first_column_is_not_cut_at_80_columns(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    table = new_table("method", "P@1", "P@5", "P@10", "R@1", "R@5", "R@10", "mAP", "queries", right=("P@1",))
    names = ["efficientnet_lite0 (imagenet) pooled", "hog 9 orientations 8x8 cells", "sift bag of words 256"]
    for name in names:
        table.add_row(name, *["0.123"] * 7, "1000")
    print_table(table)
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    for name in names:
        assert name in out, out


def test_json_alone_on_stdout(capsys):
    print_json({"path": "caf\udce9.jpg", "n": 1})
    note("wrote x")
    out, err = capsys.readouterr()
    assert json.loads(out) == {"path": "caf\udce9.jpg", "n": 1} and "wrote x" in err
