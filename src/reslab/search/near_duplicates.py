"""How well each method finds an edited copy of a photo: `reslab bench near-duplicates`.

Originals are indexed; every original is then edited the ways a photo collection holds copies
(half size, JPEG quality 30, a 10% crop on each side, a horizontal flip, +30% brightness) and each
copy searched. For each method (the perceptual hashes and the CNN embedder) it reports:

- top-1: the copy's original comes back first (what `reslab search` shows);
- recall at the duplicate rule: the copy is within `reslab duplicates`'s default threshold
  (10 of 64 bits for hashes, cosine 0.95 for vectors), and the false pairs that rule makes among
  the distinct originals (what `reslab duplicates` would wrongly group);
- speed: images/s of hashing or embedding decoded images (in memory), and ms per query on a million items,
  binary Hamming vs float inner product, measured in the same process.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from ..errors import ReslabError


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _crop(image: Image.Image, fraction: float = 0.1) -> Image.Image:
    w, h = image.size
    return image.crop((round(w * fraction), round(h * fraction), w - round(w * fraction), h - round(h * fraction)))


EDITS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "resize": lambda im: im.resize((max(16, im.width // 2), max(16, im.height // 2)), Image.BICUBIC),
    "reencode": lambda im: _jpeg(im, 30),
    "crop": _crop,
    "flip": ImageOps.mirror,
    "brightness": lambda im: ImageEnhance.Brightness(im).enhance(1.3),
}


def _images(src: Path | None, n: int) -> tuple[list[Image.Image], str]:
    from ..imageio import load_image
    from .walk import walk_images

    if src is None:
        from .samples import bundled_photos

        photos = list(bundled_photos().values())[:n]
        return photos, f"{len(photos)} photos bundled with scikit-image and scikit-learn"
    paths = [p for _, p in zip(range(n), walk_images(src))]
    if len(paths) < 2:
        raise ReslabError(f"{src} holds fewer than 2 images; give a folder of photos")
    return [load_image(p).convert("RGB") for p in paths], f"{len(paths)} photos from {src}"


def _embed_all(embedder, images: list[Image.Image], batch: int = 32) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    rows = []
    for s in range(0, len(images), batch):
        rows.append(embedder.embed([embedder.preprocess(im) for im in images[s : s + batch]]))
    return np.concatenate(rows), time.perf_counter() - t0


def _mirror_merged(sim_direct: np.ndarray, sim_mirror: np.ndarray) -> np.ndarray:
    return np.maximum(sim_direct, sim_mirror)


def evaluate_method(embedder, originals: list[Image.Image], copies: dict[str, list[Image.Image]], threshold: float,
                    mirror_queries: bool) -> dict:  # fmt: skip
    """Top-1 and recall at `threshold` per edit, false pairs among originals, and images/s."""
    db, seconds = _embed_all(embedder, originals)
    n = len(originals)
    out = {"images_per_s": n / seconds, "threshold": threshold, "mirror_queries": mirror_queries, "edits": {}}
    off_diagonal = db @ db.T
    np.fill_diagonal(off_diagonal, -np.inf)
    out["false_pairs"] = int((off_diagonal >= threshold).sum() // 2)
    out["pairs"] = n * (n - 1) // 2
    for edit, images in copies.items():
        q, _ = _embed_all(embedder, images)
        sims = q @ db.T
        if mirror_queries:
            qm, _ = _embed_all(embedder, [ImageOps.mirror(im) for im in images])
            sims = _mirror_merged(sims, qm @ db.T)
        own = sims[np.arange(n), np.arange(n)]
        top1 = float(np.mean(sims.argmax(1) == np.arange(n)))
        out["edits"][edit] = {"top1": top1, "recall_at_threshold": float(np.mean(own >= threshold - 1e-6))}
    out["top1_all"] = float(np.mean([e["top1"] for e in out["edits"].values()]))
    out["recall_at_threshold_all"] = float(np.mean([e["recall_at_threshold"] for e in out["edits"].values()]))
    return out


def index_top1(originals: list[Image.Image], copies: dict[str, list[Image.Image]]) -> dict:
    """Top-1 of each copy through a real index built as `reslab embed` builds it by default (the
    default pooling and post-processing), queried with `SearchIndex.search_image` as `reslab search` does."""
    import shutil
    import tempfile

    from ..embeddings import make_embedder
    from .embed import EmbedOptions, build_index
    from .index import SearchIndex

    work = Path(tempfile.mkdtemp(prefix="reslab-near-dup-"))
    try:
        folder = _mkdir(work / "originals")
        for i, im in enumerate(originals):
            im.save(folder / f"{i:05d}.jpg", quality=95)
        build_index(work / "originals", work / "index", make_embedder("cnn"), EmbedOptions(workers=0, progress=False))
        out = {}
        with SearchIndex.open(work / "index") as idx:
            for edit, images in copies.items():
                hits = [idx.search_image(im, k=1)[0] for im in images]
                out[edit] = float(np.mean([Path(h.path).stem == f"{i:05d}" for i, h in enumerate(hits)]))
        out["all"] = float(np.mean([out[e] for e in copies]))
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def search_speed(n: int = 1_000_000, bits: int = 64, dim: int = 1280, float_n: int = 50_000, queries: int = 200) -> dict:
    """ms per query (one at a time) of a binary flat index of n hashes vs a float flat index of
    float_n vectors of `dim`, both scaled to a million items; one process, the same queries."""
    import faiss

    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, (n, bits // 8), dtype=np.uint8)
    binary = faiss.IndexBinaryFlat(bits)
    binary.add(codes)
    vectors = rng.standard_normal((float_n, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    flat = faiss.IndexFlatIP(dim)
    flat.add(vectors)

    def per_query(index, q):
        t0 = time.perf_counter()
        for i in range(len(q)):
            index.search(q[i : i + 1], 10)
        return (time.perf_counter() - t0) / len(q) * 1000

    b_ms = per_query(binary, codes[:queries]) * 1_000_000 / n
    f_ms = per_query(flat, vectors[:queries]) * 1_000_000 / float_n
    return {"binary_ms_per_query_per_million": b_ms, "float_ms_per_query_per_million": f_ms,
            "float_over_binary": f_ms / b_ms, "bits": bits, "float_dim": dim,
            "memory_bytes_per_item": {"binary": bits // 8, "float": dim * 4}}  # fmt: skip


def bench_near_duplicates(src: Path | None = None, n: int = 200, methods=("ahash", "dhash", "phash", "whash", "cnn"),
                          speed: bool = True) -> dict:  # fmt: skip
    from .duplicates import DEFAULT_BITS_PER_64, DEFAULT_COSINE
    from ..embeddings import make_embedder

    originals, source = _images(src, n)
    copies = {edit: [fn(im) for im in originals] for edit, fn in EDITS.items()}
    result = {"source": source, "originals": len(originals), "edits": list(EDITS), "methods": {}}
    for method in methods:
        emb = make_embedder(method) if method != "cnn" else make_embedder("cnn", runtime="auto")
        if method == "cnn":
            result["methods"]["cnn"] = evaluate_method(emb, originals, copies, DEFAULT_COSINE, mirror_queries=False)
            result["methods"]["cnn"]["index_top1"] = index_top1(originals, copies)
        else:
            threshold = 1 - 2 * DEFAULT_BITS_PER_64 / emb.dim
            result["methods"][method] = evaluate_method(emb, originals, copies, threshold, mirror_queries=False)
            result["methods"][f"{method}+mirror"] = evaluate_method(emb, originals, copies, threshold, mirror_queries=True)
    if "cnn" in result["methods"]:
        cnn_rate = result["methods"]["cnn"]["images_per_s"]
        for r in result["methods"].values():
            r["speed_over_cnn"] = r["images_per_s"] / cnn_rate
    if speed:
        result["search_speed"] = search_speed()
    return result
