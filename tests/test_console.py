"""`printable`: file names and labels as text that prints anywhere, whatever bytes the name holds."""

from reslab.console import printable, shown


def test_names_that_are_not_utf8_or_hold_control_characters_print_as_escapes():
    assert printable("caf\udce9.jpg") == "caf\\xe9.jpg"  # a Latin-1 name read on a UTF-8 system
    assert printable("new\nline\t.jpg") == "new\\nline\\t.jpg"
    assert printable("\x1b[31mred.jpg") == "\\x1b[31mred.jpg"  # no terminal escape sequences
    assert printable("café 猫.jpg") == "café 猫.jpg"  # ordinary names are left alone
    printable("\udcff\udcfe.png").encode("utf-8")  # always encodable


def test_shown_escapes_rich_markup():
    assert shown("[red]x[/].jpg") == "\\[red]x\\[/].jpg"
