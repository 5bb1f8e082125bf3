"""Near-duplicate groups on planted copies."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from reslab.search.duplicates import UnionFind, find_duplicates
from reslab.search.embed import EmbedOptions, build_index
from reslab.search.index import SearchIndex


def smooth_image(seed: int) -> Image.Image:
    """A distinct smooth colour image: low-frequency noise, upsampled."""
    rng = np.random.default_rng(seed)
    small = (rng.random((4, 4, 3)) * 255).astype(np.uint8)
    return Image.fromarray(small).resize((96, 72), Image.BICUBIC)


@pytest.fixture
def planted(tmp_path):
    """12 distinct images; three of them have planted copies (byte copy, brighter, recompressed)."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(12):
        smooth_image(i).save(folder / f"img{i:02d}.png")
    smooth_image(2).save(folder / "img02_copy.png")
    ImageEnhance.Brightness(smooth_image(5)).enhance(1.03).save(folder / "img05_brighter.png")
    smooth_image(5).save(folder / "img05_q60.jpg", quality=60)
    smooth_image(9).save(folder / "img09_q80.jpg", quality=80)
    return folder


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_planted_copies_form_exactly_their_groups(planted, thumb, tmp_path, kind):
    build_index(planted, tmp_path / "index", thumb, EmbedOptions(workers=0, progress=False, index_kind=kind))
    with SearchIndex.open(tmp_path / "index") as idx:
        groups = find_duplicates(idx, threshold=0.98)
    names = sorted(sorted(h.path.rsplit("/", 1)[1] for h in g.items) for g in groups)
    assert names == [
        ["img02.png", "img02_copy.png"],
        ["img05.png", "img05_brighter.png", "img05_q60.jpg"],
        ["img09.png", "img09_q80.jpg"],
    ]
    assert groups[0].items[0].score >= 0.98 and len(groups[0].items) == 3  # largest group first
    assert all(g.min_score >= 0.98 for g in groups)


def test_union_find_merges_transitively():
    uf = UnionFind()
    for a, b in [(1, 2), (3, 4), (2, 3), (7, 8)]:
        uf.union(a, b)
    uf.find(10)  # a singleton is not a group
    assert sorted(uf.groups()) == [[1, 2, 3, 4], [7, 8]]
