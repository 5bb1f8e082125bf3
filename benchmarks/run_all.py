"""Run every benchmark once and collect their JSON in benchmarks/results/.

Each benchmark measures a ratio against a baseline run in the same process (see its --help);
this script only runs them in sequence. Usage: `make bench` or `python benchmarks/run_all.py`.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESLAB = [sys.executable, "-m", "reslab"]

BENCHMARKS = [
    ["bench", "train", "resnet20"],
    ["bench", "train", "resnet50"],
    ["bench", "data"],
    ["bench", "embed"],
    ["bench", "infer", "resnet50"],
    ["bench", "infer", "efficientnet_lite0"],
    ["bench", "search"],
    ["bench", "features"],
]


def main() -> int:
    failed = []
    for args in BENCHMARKS:
        print(f"\n$ reslab {shlex.join(args)}", flush=True)
        if subprocess.call(RESLAB + args, cwd=REPO) != 0:
            failed.append(" ".join(args))
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
