"""`reslab bench features`: images/s of every embedding method on the same photos, in one process.

The baseline is the CNN embedder (EfficientNet-Lite0, batch 32) on the same images; each method's
speed is also given as a ratio to it, so the numbers travel between machines better than raw
timings. Also timed: `compare` by keypoint matching (pairs/s) and face detection (images/s).
"""

from __future__ import annotations

import time
from pathlib import Path

from PIL import Image, ImageOps

# photos bundled with scikit-image (no download)
SAMPLE_PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "camera", "coins", "moon", "brick"]


def sample_images(n: int) -> list[Image.Image]:
    """n photos of about 512 px: the skimage samples, mirrored and rotated to vary them."""
    from skimage import data

    base = [Image.fromarray(getattr(data, name)()).convert("RGB") for name in SAMPLE_PHOTOS]
    out = []
    for i in range(n):
        im = base[i % len(base)]
        variant = i // len(base)
        out.append(ImageOps.mirror(im) if variant % 2 else im.rotate(3 * variant, expand=False))
    return out


def _images_per_second(embedder, images: list[Image.Image], batch: int = 32) -> float:
    if embedder.needs_fit:
        embedder.fit(images[: min(len(images), 32)])
    embedder.embed([embedder.preprocess(images[0])])  # warm-up: lazy imports, caches
    start = time.perf_counter()
    for i in range(0, len(images), batch):
        embedder.embed([embedder.preprocess(im) for im in images[i : i + batch]])
    return len(images) / (time.perf_counter() - start)


def run_features_benchmark(n_images: int, out: Path | None = None) -> dict:
    """Measure, print the table, and save OUT/bench_features.json (default: the benchmark results folder)."""
    import torch

    from ..console import new_table, print_table, say, stderr
    from ..embeddings import make_embedder
    from ..provenance import save_benchmark
    from .faces import detect_faces
    from .matching import match_images

    images = sample_images(n_images)
    rows = {}
    for method in ["cnn", "hist", "hog", "orb", "sift"]:
        params = {"vocab_size": 64} if method in ("sift", "orb") else {}
        with stderr().status(f"embedding {len(images)} images with {method}"):
            rows[method] = {"images_per_s": _images_per_second(make_embedder(method, **params), images)}
    baseline = rows["cnn"]["images_per_s"]
    for r in rows.values():
        r["speed_vs_cnn"] = r["images_per_s"] / baseline

    pairs = [(images[i], images[(i + 1) % len(images)]) for i in range(min(16, len(images)))]
    for detector in ["orb", "sift"]:
        start = time.perf_counter()
        for a, b in pairs:
            match_images(a, b, detector=detector)
        rows[f"match-{detector}"] = {"pairs_per_s": len(pairs) / (time.perf_counter() - start)}
    start = time.perf_counter()
    for im in images[:16]:
        detect_faces(im)
    rows["faces"] = {"images_per_s": min(16, len(images)) / (time.perf_counter() - start)}

    table = new_table("what", "throughput", "vs cnn embedder", right=("throughput", "vs cnn embedder"),
                      title=f"reslab bench features ({len(images)} photos of ~512 px, {torch.get_num_threads()} threads)")
    for name, r in rows.items():
        rate = r.get("images_per_s") or r.get("pairs_per_s")
        unit = "pairs/s" if "pairs_per_s" in r else "images/s"
        table.add_row(name, f"{rate:.1f} {unit}", f"{r['speed_vs_cnn']:.2f}x" if "speed_vs_cnn" in r else "")
    print_table(table)
    result = {
        "command": f"reslab bench features --images {n_images}",
        "images": len(images),
        "baseline": "cnn (efficientnet_lite0, imagenet, batch 32, float32, CPU)",
        "results": {k: {m: round(v, 4) for m, v in r.items()} for k, r in rows.items()},
    }
    say(f"saved {save_benchmark('bench_features', result, out)}", markup=False)
    return result
