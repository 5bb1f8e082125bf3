"""Reduced-scale JPEG decoding: how much faster, and how close to the full decode, per scale.

For user-size photos (JPEGs of 3000x2000, and of 3001x2251 as a cropped or edited photo may be,
made from the ants/bees photos: half of them one photo scaled up, half mosaics of 36 photos at
their own resolution, i.e. real fine detail everywhere), each way
of decoding + preprocessing for EfficientNet-Lite0 (224, bicubic) is compared with the full decode:
the embedding's cosine (per image: min and mean) and the milliseconds per image (best of 3).
- full decode: `load_image(path)` then the embedder's preprocessing (the reference);
- libjpeg at 1/2, 1/4, 1/8 (Pillow `draft`), framed on the full size (`resize_center_crop`);
- the same at 1/4 and 1/8 framed on the reduced image's own (rounded-up) size, as `load_image`
  returned it before (1/8 is what it chose for these photos);
- `load_image(path, min_size=...)`: what the project does now (the largest scale keeping
  DRAFT_MARGIN x the size needed).
Results: benchmarks/results/decode_parity.json.

    python benchmarks/decode_parity.py HYMENOPTERA_FOLDER [--n 24]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path


def user_size_photos(src: Path, out: Path, n: int) -> list[Path]:
    """n JPEGs (quality 90), 3000x2000 or 3001x2251: even ones a photo scaled up, odd ones a mosaic of 36 photos."""
    import numpy as np
    from PIL import Image

    photos = sorted(src.rglob("*.jpg"))
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        size = (3000, 2000) if i % 4 < 2 else (3001, 2251)  # the second: not a multiple of 8
        if i % 2 == 0:
            with Image.open(photos[(7 * i) % len(photos)]) as im:
                picture = im.convert("RGB").resize(size, Image.LANCZOS)
        else:
            picture = Image.new("RGB", size)
            tile_w, tile_h = size[0] // 6 + 1, size[1] // 6 + 1
            for k in range(36):
                with Image.open(photos[rng.integers(len(photos))]) as tile:
                    picture.paste(tile.convert("RGB").resize((tile_w, tile_h)), ((k % 6) * tile_w, (k // 6) * tile_h))
        paths.append(out / f"{i:03d}.jpg")
        picture.save(paths[-1], quality=90)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="the ants/bees folder (the tests' fixture extracts it to ~/.cache/reslab-tests)")
    parser.add_argument("--n", type=int, default=24)
    args = parser.parse_args()

    import numpy as np
    from PIL import Image

    from reslab.embeddings import CnnEmbedder
    from reslab.imageio import DRAFT_INFO, DRAFT_MARGIN, load_image
    from reslab.preprocess import center_crop, resize_center_crop, resize_shorter
    from reslab.provenance import save_benchmark

    emb = CnnEmbedder(model="efficientnet_lite0", weights="imagenet", runtime="torch")
    pre = emb.eval_preprocess
    work = Path(tempfile.mkdtemp(prefix="reslab-decode-parity-"))
    try:
        paths = user_size_photos(args.src, work, args.n)

        def reduced(path: Path, scale: int, full_size_framing: bool):
            with Image.open(path) as im:
                w, h = im.size
                im.draft("RGB", (w // scale, h // scale))
                im.load()
                picture = im.convert("RGB")
            if not full_size_framing:  # as before: the rounded-up size, its last row/column partly padding
                return np.asarray(center_crop(resize_shorter(picture, pre.resize, pre.interpolation), pre.crop))
            picture = picture.crop((0, 0, w // scale, h // scale))
            picture.info[DRAFT_INFO] = (scale, w, h)
            return np.asarray(resize_center_crop(picture, pre.resize, pre.crop, pre.interpolation))

        ways = {
            "full decode": lambda p: emb.preprocess(load_image(p)),
            **{f"1/{s}, framed on the full size": (lambda p, s=s: reduced(p, s, True)) for s in (2, 4, 8)},
            "1/4, framed on its own size": lambda p: reduced(p, 4, False),
            "1/8, framed on its own size (before)": lambda p: reduced(p, 8, False),
            f"load_image(min_size) now (margin {DRAFT_MARGIN:g})": lambda p: emb.preprocess(load_image(p, min_size=emb.min_size)),
        }
        pixels, seconds = {}, {}
        for name, way in ways.items():
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                pixels[name] = [way(p) for p in paths]
                best = min(best, time.perf_counter() - t0)
            seconds[name] = best / len(paths)
        reference = emb.embed(pixels["full decode"])
        rows = {}
        for name in ways:
            cosine = (emb.embed(pixels[name]) * reference).sum(axis=1)
            rows[name] = {"ms_per_image": 1000 * seconds[name], "speedup": seconds["full decode"] / seconds[name],
                          "cosine_min": float(cosine.min()), "cosine_mean": float(cosine.mean())}
        result = {
            "benchmark": "decode_parity",
            "model": "efficientnet_lite0",
            "images": len(paths),
            "image_sizes": "3000x2000 and 3001x2251",
            "needed_shorter_side": emb.min_size,
            "rows": rows,
            "command": f"python benchmarks/decode_parity.py {args.src} --n {args.n}",
        }
        path = save_benchmark("decode_parity", result)
        for name, r in rows.items():
            print(f"{name:>42}: {r['ms_per_image']:6.1f} ms/image ({r['speedup']:.1f}x), cosine min {r['cosine_min']:.5f} mean {r['cosine_mean']:.5f}")
        print(f"saved {path}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
