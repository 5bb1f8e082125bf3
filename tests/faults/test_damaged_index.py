"""A damaged index (a file truncated, overwritten or removed since `embed` wrote it), and an index
folder that is a file: every command says which file and how to fix it in one sentence, and the web
API answers 503 (rebuild the index; the file is named in the server's log), never 500."""

from __future__ import annotations

import shutil

import pytest

from reslab.search.embed import EmbedOptions, build_index
from reslab.embeddings import make_embedder

from .test_hostile_files import cli


@pytest.fixture(scope="module")
def index(photo_folder, tmp_path_factory):
    built = tmp_path_factory.mktemp("damaged") / "index"
    build_index(photo_folder / "train", built, make_embedder("hist"), EmbedOptions(workers=0, progress=False))
    return built


def _truncate(path):
    path.write_bytes(path.read_bytes()[:100])


def _shards(index):
    return sorted((index / "vectors").iterdir())


DAMAGES = {
    "faiss.index truncated": lambda ix: _truncate(ix / "faiss.index"),
    "items.sqlite truncated": lambda ix: (ix / "items.sqlite").write_bytes((ix / "items.sqlite").read_bytes()[:3000]),
    "manifest.json garbage": lambda ix: (ix / "manifest.json").write_text("{"),
    "vector shard removed": lambda ix: [p.unlink() for p in _shards(ix)],
    "vector shard truncated": lambda ix: [_truncate(p) for p in _shards(ix)],
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_index_is_named_in_one_sentence(damage, index, photo_folder, tmp_path, capsys):
    from fastapi.testclient import TestClient

    from reslab.web.app import create_app

    copy = tmp_path / "index"
    shutil.copytree(index, copy)
    DAMAGES[damage](copy)
    query = sorted((photo_folder / "train").rglob("*.png"))[0]
    for args in (["search", copy, "id:1", "-k", "3"], ["search", copy, query, "-k", "3"], ["duplicates", copy]):
        code, out, err = cli(capsys, *args)
        if code:  # a damage a command does not touch may leave it working: then it answers
            assert code == 1 and err.count("error:") == 1 and "embed" in err, (damage, args, err)
    try:
        app = create_app(copy)
    except Exception as e:  # the server refuses to start: a clear sentence, as `reslab serve` prints it
        assert type(e).__name__ == "ReslabError" or type(e).__name__ == "IndexMissing", e
        return
    with TestClient(app, raise_server_exceptions=False) as client:
        for url in ("/api/items", "/api/items/1", "/api/items/1/similar?k=3", "/api/image/1?size=256"):
            answer = client.get(url)
            # the index failing on the server's side is a 503 that says what to do, never a 500
            assert answer.status_code < 500 or answer.status_code == 503, (damage, url, answer.status_code)
            if answer.status_code == 503:
                assert "reslab embed" in answer.json()["detail"] and str(tmp_path) not in answer.text


def test_an_index_folder_that_is_a_file_is_refused(photo_folder, tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("my notes")
    code, _, err = cli(capsys, "embed", photo_folder, "--out", target, "--method", "hist", "--workers", "0")
    assert code == 1 and "is a file, not a folder" in err
    assert target.read_text() == "my notes"  # untouched
