"""PCA-whitening fitted on another collection (`reslab embed --whiten-from`) and query-side re-ranking,
measured through the real CLI: label P@10 (leave-one-out, `eval-retrieval`'s metric).

Every folder is indexed by `reslab embed` with its defaults (the vectors are the CLI's own). Whitening
options, DBA/QE strengths and re-ranking are compared on the selection folders (ret-cifar5,
ret-fashion5), each whitened on a collection of the *other* five classes of its source; the chosen
setting is then run by the CLI (`reslab embed --whiten-from ...` + `reslab eval-retrieval`) on the
held-out folders (ret-cifar5b, ret-fashion5b), each whitened on the other five classes of its source.
No held-out number takes part in a choice.

Whitening collections, made here from ../shared/data (400 images per class, CIFAR's or Fashion-MNIST's
train split, none of them in a folder they whiten):
  wh-cifar5   airplane/automobile/bird/cat/deer      -> whitens ret-cifar5b (dog/frog/horse/ship/truck)
  wh-cifar5b  dog/frog/horse/ship/truck              -> whitens ret-cifar5 (selection)
  wh-fashion5 T-shirt/trouser/bag/sneaker/dress      -> whitens ret-fashion5b
  wh-fashion5b pullover/coat/sandal/shirt/ankle boot -> whitens ret-fashion5 (selection)
  "mixed": a folder's own-kind collection and the other source's together (4,000 images of both kinds;
  its vectors concatenated from the two indexes, as one index of both folders would hold them)

    python benchmarks/photo_folders.py /tmp/pf
    python benchmarks/retrieval_whitening.py /tmp/pf /tmp/rw   # indexes in /tmp/rw; writes benchmarks/results/retrieval_whitening.json
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from reslab.fileio import atomic_write_text
from reslab.provenance import bench_results_dir, record
from reslab.search.postprocess import PostOptions, Postprocess, fit_whitening
from reslab.search.retrieval import postprocessed_scores
from reslab.search.stores import open_store

SELECTION = {"ret-cifar5": ("wh-cifar5b", "wh-fashion5b"), "ret-fashion5": ("wh-fashion5b", "wh-cifar5b")}
HELD_OUT = {"ret-cifar5b": ("wh-cifar5", "wh-fashion5"), "ret-fashion5b": ("wh-fashion5", "wh-cifar5")}
RESLAB = [sys.executable, "-m", "reslab"]


def make_whitening_sets(root: Path) -> None:
    from photo_folders import SHARED, fashion_folder, tar_folder  # benchmarks/ is on sys.path when run as a script

    c5, c5b = ["airplane", "automobile", "bird", "cat", "deer"], ["dog", "frog", "horse", "ship", "truck"]
    jobs = {
        "wh-cifar5": lambda o: tar_folder(SHARED / "cifar10-jpeg.tar.gz", o, c5, "train", "test", 400, 0, 4, flat=True),
        "wh-cifar5b": lambda o: tar_folder(SHARED / "cifar10-jpeg.tar.gz", o, c5b, "train", "test", 400, 0, 5, flat=True),
        "wh-fashion5": lambda o: fashion_folder(o, [0, 1, 8, 7, 3], 400, 0, 4, flat=True),
        "wh-fashion5b": lambda o: fashion_folder(o, [2, 4, 5, 6, 9], 400, 0, 5, flat=True),
    }
    for name, make in jobs.items():
        if not (root / name).exists():
            make(root / name)


def cli(*args) -> str:
    done = subprocess.run([*RESLAB, *map(str, args)], capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if done.returncode != 0:
        raise SystemExit(f"reslab {' '.join(map(str, args))} failed:\n{done.stderr}")
    return done.stdout


def index_of(root: Path, out: Path, folder: str) -> Path:
    index = out / f"{folder}.index"
    manifest = index / "manifest.json"
    if not (manifest.exists() and json.loads(manifest.read_text()).get("status") == "complete"):
        t0 = time.perf_counter()
        cli("embed", root / folder, "--out", index, "--json")
        print(f"embedded {folder} in {time.perf_counter() - t0:.0f} s", flush=True)
    return index


def rows_and_labels(index: Path) -> tuple[np.ndarray, list[str]]:
    labels, blocks = [], []
    with open_store(index) as st:
        for items, vectors in st.iter_items():
            labels += [it.label for it in items]
            blocks.append(vectors)
    return np.concatenate(blocks), labels


def p10(vectors, labels, options: PostOptions, whitening=None) -> float:
    post = Postprocess(options, whitening) if whitening is not None else Postprocess.fit(options, vectors)
    return round(postprocessed_scores(vectors, labels, [10], post).precision[10], 4)


POSTS = {f"dba {a} + qe {b}": (a, b) for a, b in itertools.product((0, 3, 5, 10), (0, 5, 10))}
WHITENINGS = list(itertools.product((128, 256, 512), (0.1, 0.5, 1.0)))


def grid(root: Path, out: Path, folders: dict) -> dict:
    """P@10 of every folder under each setting, with the whitening fitted on each of its collections."""
    rows: dict[str, dict] = {}
    for folder, (same, other) in folders.items():
        x, labels = rows_and_labels(index_of(root, out, folder))
        for post_name, (dba, qe) in POSTS.items():
            rows.setdefault(f"no whitening | {post_name}", {})[folder] = p10(x, labels, PostOptions(dba=dba, qe=qe))
        same_rows, other_rows = rows_and_labels(index_of(root, out, same))[0], rows_and_labels(index_of(root, out, other))[0]
        for kind, fit_on in (("same kind", same_rows), ("mixed", np.concatenate([same_rows, other_rows]))):
            for dim, shrink in WHITENINGS:
                w = fit_whitening(fit_on, dim, shrink)
                for post_name, (dba, qe) in POSTS.items():
                    key = f"whitened on {kind} ({dim} axes, shrinkage {shrink}) | {post_name}"
                    rows.setdefault(key, {})[folder] = p10(x, labels, PostOptions(dba=dba, qe=qe, whiten_dim=dim, whiten_shrinkage=shrink), w)
    for r in rows.values():
        r["mean"] = round(float(np.mean([r[f] for f in folders])), 4)
    return rows


def through_cli(root: Path, out: Path, folder: str, name: str, *options) -> dict:
    index = out / f"{folder}--{name}.index"
    if index.exists():
        shutil.rmtree(index)
    cli("embed", root / folder, "--out", index, *options)
    row = json.loads(cli("eval-retrieval", index, "--json"))[0]
    return {k: row[k] for k in ("P@1", "P@10", "mAP")} | {"options": " ".join(map(str, options)) or "(defaults)"}


def main(root: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    make_whitening_sets(root)
    selection, held_out_grid = grid(root, out, SELECTION), grid(root, out, HELD_OUT)  # the second one is only reported
    ranked = sorted(selection, key=lambda k: -selection[k]["mean"])
    for k in ranked[:15]:
        print(f"{k:75s} " + " ".join(f"{selection[k][f]:.3f}" for f in SELECTION) + f" | mean {selection[k]['mean']:.3f} | "
              + " ".join(f"{held_out_grid[k][f]:.3f}" for f in HELD_OUT), flush=True)  # fmt: skip
    chosen = next(k for k in ranked if k.startswith("whitened on same kind"))
    dim, shrink = (float(v) for v in chosen.split("(")[1].split(")")[0].replace(" axes, shrinkage", "").split())
    dba, qe = POSTS[chosen.split(" | ")[1]]
    print("chosen on the selection folders:", chosen, flush=True)
    held_out = {}
    for folder, (same, _other) in HELD_OUT.items():
        held_out[folder] = {"defaults": through_cli(root, out, folder, "defaults")}
        held_out[folder][f"whitened on {same}"] = through_cli(
            root, out, folder, "whitened", "--whiten-from", index_of(root, out, same), "--whiten-dim", int(dim),
            "--whiten-shrinkage", shrink, "--dba", dba, "--qe", qe)  # fmt: skip
        print(folder, json.dumps(held_out[folder], indent=1), flush=True)
    result = {"selection": SELECTION, "held_out": HELD_OUT, "chosen": chosen, "selection_rows": selection,
              "held_out_rows": held_out_grid, "held_out_through_cli": held_out,
              "provenance": record(f"python benchmarks/retrieval_whitening.py {root} {out}")}  # fmt: skip
    target = bench_results_dir() / "retrieval_whitening.json"
    atomic_write_text(target, json.dumps(result, indent=1) + "\n")
    print("wrote", target)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/pf"), Path(sys.argv[2] if len(sys.argv) > 2 else "/tmp/rw"))
