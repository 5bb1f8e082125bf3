"""Which retrieval options help, measured: label precision@k and mAP (leave-one-out, `eval-retrieval`'s
metric) of EfficientNet-Lite0 descriptors under each pooling and post-processing option.

The feature maps of every image are computed once (the image, its mirror, and at 0.707 scale; the
last stage and features.5), and every pooling option is assembled from them exactly as
`reslab.inference.pooling.descriptor` does; post-processing uses `reslab.search.postprocess` and the
scores `reslab.search.retrieval`. Defaults are chosen on the "selection" folders and then checked
on the held-out ones with the real `reslab embed` + `reslab eval-retrieval` (see docs/search.md).

    python benchmarks/photo_folders.py /tmp/pf
    python benchmarks/retrieval_options.py /tmp/pf     # writes benchmarks/results/retrieval_options.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from reslab.fileio import atomic_write_text
from reslab.imageio import load_image
from reslab.provenance import record
from reslab.embeddings import make_embedder
from reslab.inference.pooling import gem
from reslab.search.postprocess import PostOptions, Postprocess
from reslab.search.retrieval import postprocessed_scores
from reslab.search.walk import label_of, walk_images

SELECTION = {"ret-cifar5": "CIFAR-10 airplane/automobile/bird/cat/deer, 75 per class (32 px thumbnails)",
             "ret-fashion5": "Fashion-MNIST T-shirt/trouser/bag/sneaker/dress, 75 per class (28 px grey)",
             "hymenoptera/val": "ants/bees photos, the archive's val split (153)"}  # fmt: skip
HELD_OUT = {"ret-cifar5b": "CIFAR-10 dog/frog/horse/ship/truck, 75 per class",
            "ret-fashion5b": "Fashion-MNIST pullover/coat/sandal/shirt/ankle boot, 75 per class"}  # fmt: skip


def maps(emb, root: Path):
    """Per image: pooled avg/gem of the last stage and of features.5, for the image, its mirror, and 0.707 scale."""
    net = emb.net
    hooked = {}
    handle = dict(net.named_modules())["features.5"].register_forward_hook(lambda m, i, o: hooked.__setitem__("mid", o))
    paths = list(walk_images(root))
    labels = [label_of(p, root) for p in paths]
    out = {k: [] for k in ("avg", "gem", "avg_f", "gem_f", "gem_s", "gem_sf", "mid_gem", "mid_gem_f")}
    t0 = time.perf_counter()
    for s in range(0, len(paths), 32):
        batch = [emb.preprocess(load_image(p, min_size=emb.min_size)) for p in paths[s : s + 32]]
        x = torch.from_numpy(emb._to_input(batch))
        with torch.inference_mode():
            for suffix, view in (("", x), ("_f", x.flip(-1))):
                last = net.forward_features(view).float()
                out["avg" + suffix].append(last.mean(dim=(2, 3)))
                out["gem" + suffix].append(gem(last))
                out["mid_gem" + suffix].append(gem(hooked["mid"].float()))
                small = F.interpolate(view, scale_factor=0.707, mode="bilinear", align_corners=False, antialias=True)
                out["gem_s" + ("f" if suffix else "")].append(gem(net.forward_features(small).float()))
    handle.remove()
    return {k: torch.cat(v).numpy() for k, v in out.items()}, labels, time.perf_counter() - t0


def unit(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def descriptors(m: dict) -> dict:
    cat = lambda a, b: np.concatenate([unit(a), unit(b)], axis=1)  # noqa: E731
    return {
        "avg (before)": m["avg"],
        "avg + flip": m["avg"] + m["avg_f"],
        "gem": m["gem"],
        "gem + flip": m["gem"] + m["gem_f"],
        "gem + flip + 2 scales": m["gem"] + m["gem_f"] + m["gem_s"] + m["gem_sf"],
        "gem + flip + features.5": cat(m["mid_gem"], m["gem"]) + cat(m["mid_gem_f"], m["gem_f"]),
    }


POST = {
    "none": PostOptions(),
    "whiten 64": PostOptions(whiten=True, whiten_dim=64),
    "whiten 128": PostOptions(whiten=True, whiten_dim=128),
    "whiten 256": PostOptions(whiten=True, whiten_dim=256),
    "whiten 128, shrink 1": PostOptions(whiten=True, whiten_dim=128, whiten_shrinkage=1.0),
    "qe 5": PostOptions(qe=5),
    "dba 3 + qe 5": PostOptions(dba=3, qe=5),
    "whiten 128 + qe 5": PostOptions(whiten=True, whiten_dim=128, qe=5),
    "whiten 128 + dba 3 + qe 5": PostOptions(whiten=True, whiten_dim=128, dba=3, qe=5),
}


def score(vectors, labels, post: PostOptions) -> dict:
    vectors = unit(vectors.astype(np.float32))
    s = postprocessed_scores(vectors, labels, [1, 10], Postprocess.fit(post, vectors))
    return {"P@1": round(s.precision[1], 4), "P@10": round(s.precision[10], 4), "mAP": round(s.mean_ap, 4)}


def main(root: Path) -> None:
    emb = make_embedder("cnn")  # its network is run directly below, in fp32; the held-out check runs the default (fp32) CLI
    result = {"folders": {**SELECTION, **HELD_OUT}, "rows": {}, "seconds": {}}
    for folder in [*SELECTION, *HELD_OUT]:
        m, labels, seconds = maps(emb, root / folder)
        result["seconds"][folder] = round(seconds, 1)
        rows = {}
        for name, d in descriptors(m).items():
            rows[f"{name} | none"] = score(d, labels, POST["none"])
        best = descriptors(m)["gem + flip"]
        for post_name, post in POST.items():
            rows[f"gem + flip | {post_name}"] = score(best, labels, post)
        result["rows"][folder] = rows
        print(folder, json.dumps(rows, indent=0), flush=True)
    result["provenance"] = record("python benchmarks/retrieval_options.py " + str(root))
    out = Path("benchmarks/results/retrieval_options.json")
    atomic_write_text(out, json.dumps(result, indent=1) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/pf"))
