"""The folder walk: streaming order, labels, and the sort key the shard merge relies on."""

import random
from pathlib import Path

from reslab.search.walk import label_of, walk_images, walk_order_key


def test_walk_order_matches_the_merge_sort_key(tmp_path):
    names = ["b/x.jpg", "b/a.png", "a-c/z.jpg", "a/b/c.jpg", "a/z.jpg", "a/b.jpg", "top.jpg", "b/sub/q.jpg", ".hidden/h.jpg", "a/notes.txt"]
    for n in names:
        (tmp_path / n).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / n).write_bytes(b"x")
    walked = [p.relative_to(tmp_path).as_posix() for p in walk_images(tmp_path)]
    # files of a folder first (sorted), then its subfolders (sorted); hidden and non-images skipped
    assert walked == ["top.jpg", "a/b.jpg", "a/z.jpg", "a/b/c.jpg", "a-c/z.jpg", "b/a.png", "b/x.jpg", "b/sub/q.jpg"]
    shuffled = walked[:]
    random.Random(0).shuffle(shuffled)
    assert sorted(shuffled, key=walk_order_key) == walked
    assert label_of(tmp_path / "a/b/c.jpg", tmp_path) == "b" and label_of(tmp_path / "top.jpg", tmp_path) == ""


def test_walk_is_a_generator(tmp_path):
    (tmp_path / "one.jpg").write_bytes(b"x")
    it = walk_images(tmp_path)
    assert iter(it) is it and next(it) == Path(tmp_path / "one.jpg")
