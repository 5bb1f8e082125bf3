"""k-reciprocal re-ranking (`reslab embed --rerank`; Zhong et al. 2017, `reslab.search.rerank`) measured
on the indexes of `benchmarks/retrieval_whitening.py`: label P@1, P@10 and mAP, leave-one-out.

Part 1 (settings): the product's own code path (`reslab.search.retrieval.postprocessed_scores` with the
graph `reslab.search.rerank.fit_graph` fits at finalize, exactly as `reslab eval-retrieval` ranks), on the
vectors the CLI embedded, for a grid of k1 x k2 x lambda, on two bases: the default post-processing
(DBA 3 + QE 5) and whitening learned on the other five classes (256 axes, shrinkage 0.5) + DBA 10 + QE 5.
Each setting is run twice: the first result kept where cosine put it (the default, `rerank_first=False`) and
re-ranked too (`--rerank-first`). Settings are chosen per base on the selection folders (mean P@10, then
mAP, then P@1), reported on the held-out ones.

Part 2 (CLI): each chosen setting applied by the real CLI: a copy of the folder's default index updated
with `reslab embed FOLDER --out COPY <options>` (nothing is re-embedded; finalize refits the
post-processing and the graph), then `reslab eval-retrieval COPY --json`.

    python benchmarks/retrieval_whitening.py /tmp/pf /tmp/rw   # first: the indexes
    python benchmarks/retrieval_rerank.py /tmp/pf /tmp/rw      # writes benchmarks/results/retrieval_rerank.json
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
from reslab.search.rerank import fit_graph
from reslab.search.retrieval import postprocessed_scores
from retrieval_whitening import HELD_OUT, SELECTION, rows_and_labels  # benchmarks/ is on sys.path when run as a script

K1 = [10, 20, 30]
K2 = [1, 3, 6]
LAMBDA = [0.1, 0.3, 0.5]
BASES = {
    "defaults (DBA 3 + QE 5)": dict(dba=3, qe=5),
    "whitened on the other classes (256 axes, shrinkage 0.5) + DBA 10 + QE 5": dict(dba=10, qe=5, whiten=True),
}
RESLAB = [sys.executable, "-m", "reslab"]


def scores(x: np.ndarray, labels: list[str], base: dict, whitening, rerank: tuple | None, first: bool = False) -> dict:
    options = PostOptions(**{k: v for k, v in base.items() if k != "whiten"})
    post = Postprocess(options, whitening)
    graph = None
    if rerank is not None:
        k1, k2, lam = rerank
        post = Postprocess(PostOptions(**{**options.__dict__, "rerank": True, "rerank_k1": k1, "rerank_k2": k2, "rerank_lambda": lam,
                                          "rerank_first": first}),
                           whitening, rerank_graph={})  # fmt: skip
        rows = post.database(post.transform(x))  # what the FAISS index holds, as finalize fits it
        graph = fit_graph(np.arange(len(x)), rows, k1)
    s = postprocessed_scores(x, labels, [1, 10], post, graph)
    return {"P@1": round(s.precision[1], 4), "P@10": round(s.precision[10], 4), "mAP": round(s.mean_ap, 4)}


def settings_grid(rw: Path) -> dict:
    rows: dict[str, dict] = {}
    for folder, (same, _other) in {**SELECTION, **HELD_OUT}.items():
        x, labels = rows_and_labels(rw / f"{folder}.index")
        whitening = fit_whitening(rows_and_labels(rw / f"{same}.index")[0], 256, 0.5)
        for name, base in BASES.items():
            w = whitening if base.get("whiten") else None
            rows.setdefault(f"{name} | none", {})[folder] = scores(x, labels, base, w, None)
            for k1, k2, lam, first in itertools.product(K1, K2, LAMBDA, (False, True)):
                rows.setdefault(f"{name} | rerank k1={k1} k2={k2} lambda={lam} first={first}", {})[folder] = scores(
                    x, labels, base, w, (k1, k2, lam), first)  # fmt: skip
        print(folder, flush=True)
    for r in rows.values():
        r["selection mean"] = {m: round(float(np.mean([r[f][m] for f in SELECTION])), 4) for m in ("P@1", "P@10", "mAP")}
    return rows


def chosen(rows: dict, base: str) -> str:
    """The base's rerank row with the best selection mean P@10, then mAP, then P@1 (to 3 decimals: closer is a tie)."""
    mine = [k for k in rows if k.startswith(base + " | rerank")]
    return max(mine, key=lambda k: tuple(round(rows[k]["selection mean"][m], 3) for m in ("P@10", "mAP", "P@1")))


def cli_eval(pf: Path, rw: Path, folder: str, tag: str, options: list[str]) -> dict:
    """A copy of the folder's default index updated by `reslab embed` with `options`, then `eval-retrieval`."""
    out = rw / f"{folder}--{tag}.index"
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(rw / f"{folder}.index", out)
    env = dict(os.environ)
    t0 = time.perf_counter()
    subprocess.run([*RESLAB, "embed", str(pf / folder), "--out", str(out), "--workers", "0", *options], check=True, env=env,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    finalize_s = time.perf_counter() - t0
    got = json.loads(subprocess.run([*RESLAB, "eval-retrieval", str(out), "--json"], check=True, env=env, capture_output=True, text=True).stdout)[0]
    info = json.loads(subprocess.run([*RESLAB, "index", "info", str(out), "--json"], check=True, env=env, capture_output=True, text=True).stdout)
    return {"P@1": round(got["P@1"], 4), "P@10": round(got["P@10"], 4), "mAP": round(got["mAP"], 4), "items": got["items"],
            "update_s": round(finalize_s, 1), "postprocess": info["postprocess"], "command": f"reslab embed {pf / folder} --out {out} " + " ".join(options)}  # fmt: skip


def main(pf: Path, rw: Path) -> None:
    load = os.getloadavg()
    rows = settings_grid(rw)
    picks = {base: chosen(rows, base) for base in BASES}
    for k, r in rows.items():
        if "| none" in k or k in picks.values():
            print(f"{k:110s} " + " ".join(f"{r[f]['P@10']:.3f}" for f in [*SELECTION, "selection mean", *HELD_OUT]))
    cli: dict[str, dict] = {}
    for base, pick in picks.items():
        k1, k2, lam, first = (p.split("=")[1] for p in pick.split("| rerank ")[1].split())
        rerank = ["--rerank-k1", k1, "--rerank-k2", k2, "--rerank-lambda", lam, "--rerank-first" if first == "True" else "--no-rerank-first"]
        for folder, (same, _other) in {**SELECTION, **HELD_OUT}.items():
            if base.startswith("defaults"):
                variants = {"defaults": ["--no-rerank"], "defaults-rerank": rerank}
            else:
                wh = ["--whiten-from", str(rw / f"{same}.index"), "--whiten-dim", "256", "--whiten-shrinkage", "0.5", "--dba", "10", "--qe", "5"]
                variants = {"whitened": [*wh, "--no-rerank"], "whitened-rerank": [*wh, *rerank]}
            for tag, options in variants.items():
                cli.setdefault(tag, {})[folder] = cli_eval(pf, rw, folder, tag, options)
                print(tag, folder, cli[tag][folder]["P@10"], flush=True)
    result = {"selection": list(SELECTION), "held_out": list(HELD_OUT), "grid": rows, "chosen": picks, "cli": cli,
              "load_average_before": [round(v, 2) for v in load], "load_average_after": [round(v, 2) for v in os.getloadavg()],
              "provenance": record(f"python benchmarks/retrieval_rerank.py {pf} {rw}")}  # fmt: skip
    target = bench_results_dir() / "retrieval_rerank.json"
    atomic_write_text(target, json.dumps(result, indent=1) + "\n")
    print("wrote", target)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/pf"), Path(sys.argv[2] if len(sys.argv) > 2 else "/tmp/rw"))
