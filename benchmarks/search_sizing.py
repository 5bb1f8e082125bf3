"""Sizing similarity search to 100M and 1B images, computed from this project's own benchmark results.

    python benchmarks/search_sizing.py [--results benchmarks/results] [--json]

Reads what `reslab bench search` (FAISS, and Milvus with --store milvus) and `reslab bench embed`
saved, and prints the tables of the "Sizing" section of docs/search.md: vectors per GB of each
index structure, queries per second per core and the nodes a target rate needs, and the time to
embed 100M and 1B images. Every input number is a measurement named with the command that made
it; the only other inputs are the deployment assumptions below, stated where they are used.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

# Deployment assumptions (not measurements): change them to your machines.
NODE_CORES = 16  # cores per query node
NODE_INDEX_GB = 64  # memory per query node given to the index (the rest: OS, Milvus, headroom)
TARGET_QPS = 1000  # queries per second the service must answer
SIZES = (100_000_000, 1_000_000_000)


def load(results: Path, name: str) -> dict:
    path = results / f"{name}.json"
    if not path.exists():
        raise SystemExit(f"{path} is missing; run `reslab bench embed` first (see docs/search.md)")
    return json.loads(path.read_text())


def search_results(results: Path, patterns: tuple[str, ...]) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted({p for pattern in patterns for p in results.glob(pattern)})]


def per_kind(found: list[dict], needs: str) -> dict[str, tuple[dict, dict]]:
    """For each FAISS kind, (its numbers, the run they come from) from the run with the most vectors that measured `needs`."""
    best: dict[str, tuple[dict, dict]] = {}
    for run in found:
        for kind, r in run.get("kinds", {}).items():
            if needs in r and (kind not in best or run["n"] > best[kind][1]["n"]):
                best[kind] = (r, run)
    return best


COMMANDS = {
    "FAISS": "reslab bench search --n 1000000 --kinds flat,ivf,hnsw,ivfpq",
    "Milvus": "reslab bench search --n 100000 --kinds flat,ivf,hnsw,ivfpq --store milvus",
}


def cores_of(result: dict, fallback: int | None = None) -> int:
    """The cores the benchmark ran on (its provenance record; the first 1M runs, made on the same 2-core
    machine before results carried one, take the cores of the runs that do)."""
    machine = result.get("provenance", {}).get("machine") or result.get("machine") or {}
    cores = machine.get("cores") or machine.get("cpu_count") or fallback
    if cores is None:
        raise SystemExit(f"{result.get('command')}: its result does not say how many cores it ran on")
    return int(cores)


def cost_growth(kind: str, n_from: int, n_to: int) -> float:
    """How much one query's work grows from n_from to n_to vectors, from how each structure searches:
    flat scans all N; IVF with nlist = 4 sqrt(N) and a fixed nprobe scans nprobe * N / nlist ~ sqrt(N);
    HNSW walks ~log N graph layers; IVF-PQ as IVF (codes instead of vectors)."""
    if kind == "flat":
        return n_to / n_from
    if kind in ("ivf", "ivfpq"):
        return math.sqrt(n_to / n_from)
    if kind == "hnsw":
        return math.log(n_to) / math.log(n_from)
    raise ValueError(kind)


def sizing(results: Path) -> dict:
    faiss_runs = search_results(results, ("bench_search_[0-9]*x512*.json", "bench_search_milvus_*x512*.json"))  # FAISS runs in both
    milvus_runs = [r for r in search_results(results, ("bench_search_milvus_*x512*.json",)) if "provenance" in r]
    if not milvus_runs:
        raise SystemExit(f"no Milvus result in {results}; run `{COMMANDS['Milvus']}`")
    small = max(milvus_runs, key=lambda r: r["n"])
    copies = [r for r in milvus_runs if "copy" in r["milvus"]]
    embed = load(results, "bench_embed")
    machine_cores = cores_of(small)
    speed, size = per_kind(faiss_runs, "batch_ms_per_query"), per_kind(faiss_runs, "bytes_per_vector")
    out: dict = {"inputs": {"faiss_speed": {k: run["command"] for k, (_, run) in speed.items()},
                            "faiss_memory": {k: run["command"] for k, (_, run) in size.items()},
                            "milvus": small["command"], "embed": embed["command"]}}  # fmt: skip

    # 1. memory: measured bytes per vector (FAISS: the serialised index; Milvus Lite: its files and RSS)
    memory = {}
    for kind, (r, run) in size.items():
        memory[f"faiss {kind}"] = {"bytes_per_vector": r["bytes_per_vector"], "vectors_per_gb": 1e9 / r["bytes_per_vector"], "measured_n": run["n"]}
    for key, value in small["milvus"]["memory"].items():
        memory[f"milvus lite ({key.replace('_', ' ')})"] = {"bytes_per_vector": value, "vectors_per_gb": 1e9 / value, "measured_n": small["n"]}
    out["memory"] = memory

    # 2. queries: measured batch throughput per core at the largest measured size, grown to each size; nodes for TARGET_QPS
    queries = {}
    for kind, (r, run) in speed.items():
        if kind not in size:
            continue
        per_core_qps = 1000.0 / (r["batch_ms_per_query"] * cores_of(run, machine_cores))
        row = {"recall_at_10": r["recall_at_k"], "qps_per_core": per_core_qps, "measured_n": run["n"],
               "load_average": run.get("provenance", {}).get("machine", {}).get("load_average")}  # fmt: skip
        for n in SIZES:
            shards = math.ceil(n * size[kind][0]["bytes_per_vector"] / (NODE_INDEX_GB * 1e9))  # memory decides how many pieces
            shard_n = n / shards
            shard_qps = per_core_qps / cost_growth(kind, run["n"], shard_n) * NODE_CORES  # every query visits every shard
            replicas = math.ceil(TARGET_QPS / shard_qps)
            row[f"{n}"] = {"shards": shards, "replicas": replicas, "nodes": shards * replicas, "qps_per_shard_node": shard_qps}
        queries[kind] = row
    out["queries"] = queries
    out["milvus_lite_vs_faiss"] = {
        kind: {"single_ms": r["single_ms_per_query"], "faiss_single_ms": small["kinds"][kind]["single_ms_per_query"],
               "batch_ms": r["batch_ms_per_query"], "faiss_batch_ms": small["kinds"][kind]["batch_ms_per_query"],
               "recall_at_10": r["recall_at_k"], "build_s": r["build_s"], "faiss_build_s": small["kinds"][kind]["build_s"]}
        for kind, r in small["milvus"]["kinds"].items()
    }  # fmt: skip

    # 3. moving an index: `index copy` items/s each way (Milvus Lite in this process; a server ingests in parallel)
    if copies:
        copy_run = max(copies, key=lambda r: r["n"])
        copy = copy_run["milvus"]["copy"]
        out["inputs"]["copy"] = copy_run["command"]
        out["copy"] = {
            direction: {"items_per_s": c["items_per_s"], "peak_rss_growth_bytes_per_vector": c["peak_rss_growth_bytes_per_vector"], "measured_n": copy_run["n"],
                        **{f"{n}": n / c["items_per_s"] / 3600 for n in SIZES}}
            for direction, c in copy.items() if isinstance(c, dict)
        }  # fmt: skip

    # 4. embedding: measured images/s on this machine's cores, per core, to core-hours for each size
    embed_cores = cores_of(embed, machine_cores)
    rates = {"pipeline fp32": embed["pipeline_images_per_s"], **{f"model {k}": v for k, v in embed["model_paths_images_per_s"].items()}}
    out["embedding"] = {
        name: {"images_per_s_per_core": rate / embed_cores, **{f"{n}": n / (rate / embed_cores) / 3600 for n in SIZES}}
        for name, rate in rates.items()
    }
    out["assumptions"] = {"node_cores": NODE_CORES, "node_index_gb": NODE_INDEX_GB, "target_qps": TARGET_QPS, "measured_on_cores": machine_cores,
                          "milvus_measured_n": small["n"], "milvus_load_average": small["provenance"]["machine"].get("load_average")}
    return out


def markdown(s: dict) -> str:
    lines = ["| structure | bytes per 512-d vector | vectors per GB | measured at |", "|---|---|---|---|"]
    for name, m in s["memory"].items():
        lines.append(f"| {name} | {m['bytes_per_vector']:,.0f} | {m['vectors_per_gb'] / 1e6:,.2f} M | {m['measured_n']:,} |")
    a = s["assumptions"]
    lines += ["", "| kind | measured at | recall@10 | q/s per core | " + " | ".join(
        f"{n // 1_000_000}M: shards x replicas = nodes" for n in SIZES) + " |", "|---|---|---|---|" + "---|" * len(SIZES)]  # fmt: skip
    for kind, q in s["queries"].items():
        cells = [f"{q[str(n)]['shards']} x {q[str(n)]['replicas']} = {q[str(n)]['nodes']}" for n in SIZES]
        lines.append(f"| {kind} | {q['measured_n']:,} | {q['recall_at_10']:.3f} | {q['qps_per_core']:,.1f} | " + " | ".join(cells) + " |")
    lines += ["", f"(nodes of {a['node_cores']} cores with {a['node_index_gb']} GB for the index, {a['target_qps']} q/s)", ""]
    lines += [f"| Milvus Lite at {a['milvus_measured_n']:,} | recall@10 | batch ms/query (FAISS) | single ms/query (FAISS) | build s (FAISS) |",
              "|---|---|---|---|---|"]
    for kind, m in s["milvus_lite_vs_faiss"].items():
        lines.append(f"| {kind} | {m['recall_at_10']:.3f} | {m['batch_ms']:.2f} ({m['faiss_batch_ms']:.2f}) | "
                     f"{m['single_ms']:.1f} ({m['faiss_single_ms']:.1f}) | {m['build_s']:.0f} ({m['faiss_build_s']:.0f}) |")  # fmt: skip
    lines.append("")
    if "copy" in s:
        lines += ["| index copy (Milvus Lite) | measured at | items/s | peak memory, bytes/vector | 100M items: hours | 1B items: hours |",
                  "|---|---|---|---|---|---|"]
        for direction, c in s["copy"].items():
            lines.append(f"| {direction.replace('_', ' ')} | {c['measured_n']:,} | {c['items_per_s']:,.0f} | {c['peak_rss_growth_bytes_per_vector']:,.0f} | "
                         f"{c[str(SIZES[0])]:,.0f} | {c[str(SIZES[1])]:,.0f} |")  # fmt: skip
        lines.append("")
    lines += ["| embedding path | images/s per core | 100M images: core-hours | 1B images: core-hours |", "|---|---|---|---|"]
    for name, e in s["embedding"].items():
        lines.append(f"| {name} | {e['images_per_s_per_core']:.1f} | {e[str(SIZES[0])]:,.0f} | {e[str(SIZES[1])]:,.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--json", action="store_true", help="Print the numbers as JSON.")
    args = parser.parse_args()
    s = sizing(args.results)
    print(json.dumps(s, indent=2) if args.json else markdown(s))


if __name__ == "__main__":
    main()
