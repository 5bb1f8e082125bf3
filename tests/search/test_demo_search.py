"""The demo's search stage: every edited copy finds its original; the copies group together."""

import pytest
from rich.console import Console


@pytest.mark.slow
def test_search_demo_finds_every_original(tmp_path):
    from reslab.demos import search

    console = Console(record=True, width=200)
    search.run(tmp_path, console)
    text = console.export_text()
    assert "44/44 copies found their original as the top hit" in text
    assert "11 groups" in text
    assert (tmp_path / "copies_and_originals.png").stat().st_size > 10_000
    assert "reslab serve" in text
