"""What the CNN sees and which descriptor: P@10 (leave-one-out, `eval-retrieval`'s metric) of
EfficientNet-Lite0 ImageNet features by input resolution, pooling, class logits and DBA/QE strength,
and PCA-whitening learned on a disjoint set (other classes of the same source).

Chosen on the selection folders (ret-cifar5, ret-fashion5, hymenoptera/val), reported on the held-out
ones (ret-cifar5b, ret-fashion5b): see docs/search.md ("Thumbnails whole").

    python benchmarks/photo_folders.py /tmp/pf
    python benchmarks/retrieval_inputs.py /tmp/pf /tmp/retrieval-inputs-cache
        # writes benchmarks/results/retrieval_inputs.json; features are cached per folder and input

Inputs: crop224 = resize 256 + centre crop 224 (what embed did); full224 = resize to 224, centre crop
224 (a square thumbnail whole: what `whole_small` does for images below 224 px); full320 = 320 whole.
Whitening sets (wh-cifar5, wh-fashion5): 600 images of the selection classes, disjoint from the
held-out classes, made here from ../shared/data.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from reslab.fileio import atomic_write_text
from reslab.imageio import load_image
from reslab.preprocess import center_crop, normalize, resize_shorter
from reslab.provenance import bench_results_dir, record
from reslab.embeddings import make_embedder
from reslab.inference.pooling import gem
from reslab.search.postprocess import PostOptions, Postprocess, fit_whitening
from reslab.search.retrieval import postprocessed_scores
from reslab.search.walk import label_of, walk_images

SELECTION = ["ret-cifar5", "ret-fashion5", "hymenoptera/val"]
HELD_OUT = ["ret-cifar5b", "ret-fashion5b"]
INPUTS = {"crop224": (256, 224), "full224": (224, 224), "full320": (320, 320)}
WHITENING_SETS = {"ret-cifar5b": "wh-cifar5", "ret-fashion5b": "wh-fashion5"}


def unit(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def features(emb, paths, resize: int, crop: int, layers=True) -> dict:
    """Per image and its mirror: GeM (p=2, 3) and average of the last map, GeM of features.6/.7, logits."""
    net, prep, hooked = emb.net, emb.eval_preprocess, {}
    mods = dict(net.named_modules())
    handles = [mods[n].register_forward_hook(lambda m, i, o, n=n: hooked.__setitem__(n, o)) for n in ("features.6", "features.7")]
    out: dict[str, list] = {}
    try:
        for s in range(0, len(paths), 32):
            batch = [np.asarray(center_crop(resize_shorter(load_image(p).convert("RGB"), resize, prep.interpolation), crop), np.uint8)
                     for p in paths[s : s + 32]]  # fmt: skip
            x = normalize(torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).float().div_(255), prep.mean, prep.std)
            with torch.inference_mode():
                for suffix, view in (("", x), ("_f", x.flip(-1))):
                    last = net.forward_features(view).float()
                    d = {"gem": gem(last), "gem2": gem(last, 2.0), "avg": last.mean(dim=(2, 3))}
                    d["logits"] = net.classifier(d["avg"])
                    if layers:
                        d |= {"gem_6": gem(hooked["features.6"].float()), "gem_7": gem(hooked["features.7"].float())}
                    for k, v in d.items():
                        out.setdefault(k + suffix, []).append(v.numpy())
    finally:
        for h in handles:
            h.remove()
    return {k: np.concatenate(v) for k, v in out.items()}


def cached(emb, root: Path, folder: str, name: str, cache: Path, limit: int | None = None) -> dict:
    f = cache / f"{folder.replace('/', '_')}-{name}.npz"
    if not f.exists():
        paths = list(walk_images(root / folder))
        if limit is not None and len(paths) > limit:
            paths = [paths[i] for i in sorted(np.random.default_rng(0).choice(len(paths), limit, replace=False))]
        t0 = time.perf_counter()
        feats = features(emb, paths, *INPUTS[name], layers=limit is None)
        np.savez(f, labels=np.array([label_of(p, root / folder) for p in paths]), **feats)
        print(f"{folder} {name}: {len(paths)} images in {time.perf_counter() - t0:.0f} s", flush=True)
    return dict(np.load(f))


def descriptors(d: dict) -> dict:
    both = lambda k: d[k] + d[k + "_f"]  # noqa: E731
    logits = (d["logits"] + d["logits_f"]) / 2
    logits = logits - logits.mean(1, keepdims=True)
    return {"gem": both("gem"), "gem p=2": both("gem2"), "avg": both("avg"), "logits": logits,
            "gem + 0.5 logits": np.concatenate([unit(both("gem")), 0.5 * unit(logits)], 1),
            "gem of features.6 + .7 + last": np.concatenate([unit(both("gem_6")), unit(both("gem_7")), unit(both("gem"))], 1)}  # fmt: skip


POSTS = {"none": PostOptions(), **{f"dba {a} + qe {b}" if a else f"qe {b}": PostOptions(dba=a, qe=b) for a, b in itertools.product((0, 3, 5, 10), (5, 10))}}


def p10(vectors, labels, post: PostOptions, whitening=None) -> float:
    v = unit(vectors.astype(np.float32))
    if whitening is not None:
        v = whitening.apply(v)
    return round(postprocessed_scores(v, list(labels), [10], Postprocess.fit(post, v)).precision[10], 4)


def main(root: Path, cache: Path) -> None:
    from photo_folders import fashion_folder, tar_folder, SHARED  # benchmarks/ is on sys.path when run as a script

    cache.mkdir(parents=True, exist_ok=True)
    if not (root / "wh-cifar5").exists():
        tar_folder(SHARED / "cifar10-jpeg.tar.gz", root / "wh-cifar5", ["airplane", "automobile", "bird", "cat", "deer"], "train", "test", 400, 0, 4, flat=True)
    if not (root / "wh-fashion5").exists():
        fashion_folder(root / "wh-fashion5", [0, 1, 8, 7, 3], 400, 0, 4, flat=True)
    torch.set_num_threads(2)
    emb = make_embedder("cnn")
    rows: dict[str, dict] = {}
    for name in INPUTS:
        for folder in SELECTION + HELD_OUT:
            d = cached(emb, root, folder, name, cache)
            for desc, x in descriptors(d).items():
                for post_name, post in POSTS.items():
                    rows.setdefault(f"{name} | {desc} | {post_name}", {})[folder] = p10(x, d["labels"], post)
    for r in rows.values():
        r["selection mean"] = round(float(np.mean([r[f] for f in SELECTION])), 4)
    whitened = {}
    for folder, source in WHITENING_SETS.items():
        w = cached(emb, root, source, "full224", cache, limit=600)
        fit_on = unit(w["gem"] + w["gem_f"])
        d = cached(emb, root, folder, "full224", cache)
        x = unit(d["gem"] + d["gem_f"])
        for dim, shrink, post_name in itertools.product((64, 128, 256, 512), (0.1, 0.5, 1.0), ("none", "dba 3 + qe 5", "dba 10 + qe 5")):
            key = f"whitening {dim} axes, shrinkage {shrink} (fitted on {source}) | {post_name}"
            whitened.setdefault(key, {})[folder] = p10(x, d["labels"], POSTS[post_name], fit_whitening(fit_on, dim, shrink))
    best = sorted(rows, key=lambda k: -rows[k]["selection mean"])[:20]
    for k in best:
        print(f"{k:60s} " + " ".join(f"{rows[k][f]:.3f}" for f in SELECTION + HELD_OUT + ["selection mean"]))
    result = {"selection": SELECTION, "held_out": HELD_OUT, "rows": rows, "whitening_on_a_disjoint_set": whitened,
              "provenance": record(f"python benchmarks/retrieval_inputs.py {root} {cache}")}  # fmt: skip
    out = bench_results_dir() / "retrieval_inputs.json"
    atomic_write_text(out, json.dumps(result, indent=1) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/pf"), Path(sys.argv[2] if len(sys.argv) > 2 else "/tmp/retrieval-inputs-cache"))
