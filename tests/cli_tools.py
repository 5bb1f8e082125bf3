"""Running the `reslab` CLI inside the test process (fast, and coverage sees it)."""

from __future__ import annotations


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `reslab ARGS`; output printed before the call is dropped."""
    from reslab.cli import main

    capsys.readouterr()
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code or 0
    out, err = capsys.readouterr()
    return code, out, err
