"""`printable`: file names and labels as text that prints anywhere, whatever bytes the name holds."""

from reslab.console import printable, shown


def test_names_that_are_not_utf8_or_hold_control_characters_print_as_escapes():
    assert printable("caf\udce9.jpg") == "caf\\xe9.jpg"  # a Latin-1 name read on a UTF-8 system
    assert printable("new\nline\t.jpg") == "new\\nline\\t.jpg"
    assert printable("\x1b[31mred.jpg") == "\\x1b[31mred.jpg"  # no terminal escape sequences
    assert printable("café 猫.jpg") == "café 猫.jpg"  # ordinary names are left alone
    printable("\udcff\udcfe.png").encode("utf-8")  # always encodable
    printable("lone \ud800 surrogate").encode("utf-8")  # not an escaped byte (text from JSON, say): still prints


def test_shown_escapes_rich_markup():
    assert shown("[red]x[/].jpg") == "\\[red]x\\[/].jpg"


def test_a_name_nobody_escaped_prints_as_escapes_on_a_strict_utf8_stream(monkeypatch):
    # a UTF-8 locale's stdout is strict: an undecodable name printed as is used to raise
    # UnicodeEncodeError, and rich kept the failed line in its buffer, failing every later print
    import io
    import os
    import sys

    from reslab.console import note, say

    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", out)
    say(f"found {os.fsdecode(b'caf' + bytes([0xE9]) + b'.png')}", markup=False)
    note("the next line prints too")
    written = out.buffer.getvalue().decode("utf-8")
    assert "found caf\\xe9.png\n" in written and written.endswith("the next line prints too\n")
