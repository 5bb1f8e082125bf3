"""`make test`: the suite as a few plain pytest processes side by side, one per core (at most 4).

Most tests are single-threaded Python and subprocess work, so one pytest per core runs the suite in
about half the time on the 2-core CI machine. Each process runs its share of the folders in
pytest's usual order, so every test sees what it sees in a one-process run. Not yet `make test`'s
default (`TEST_WORKERS=2 make test`): in one of four full runs, with both cores busy,
tests/faults/test_signals_train.py's first stop (SIGTERM while the trainer waits for its 10th batch)
came before the first optimizer step (step 0 on disk, the test expects >= 1); it passes alone.

    python tests/run_in_parallel.py [--workers N] [pytest arguments...]

The folders are split by a rough cost (seconds on 2 cores, from `pytest --durations`); a folder
missing from the table counts as `DEFAULT_COST`. Each process writes its own log; the logs are
printed one after another when all are done, and the exit status is the first non-zero one.
Ctrl-C or SIGTERM stops every process (each runs in its own process group).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
COST = {"faults": 200, "search": 180, "inference": 70, "models": 80, "train": 60, "data": 60, "experiments": 30,
        "report": 25, "ssl": 20, "features": 15, "embeddings": 15, "analysis": 15, "web": 15}  # fmt: skip
DEFAULT_COST = 5


def shares(workers: int) -> list[list[str]]:
    """The test folders and top-level test files in `workers` groups of about equal cost (greedy, largest first)."""
    entries = sorted(p for p in TESTS.iterdir() if (p.is_dir() and not p.name.startswith((".", "_"))) or
                     (p.is_file() and p.name.startswith("test_") and p.suffix == ".py"))  # fmt: skip
    groups: list[tuple[int, list[Path]]] = [(0, []) for _ in range(workers)]
    for entry in sorted(entries, key=lambda p: -COST.get(p.name, DEFAULT_COST)):
        i = min(range(workers), key=lambda g: groups[g][0])
        groups[i] = (groups[i][0] + COST.get(entry.name, DEFAULT_COST), groups[i][1] + [entry])
    # pytest's own order inside each share (folders and files sorted by name), as in a one-process run
    return [[str(p.relative_to(REPO)) for p in sorted(members)] for _, members in groups if members]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=min(4, len(os.sched_getaffinity(0))))
    args, pytest_args = parser.parse_known_args(argv)
    named_tests = any((REPO / a.split("::")[0]).exists() for a in pytest_args if not a.startswith("-"))
    if args.workers <= 1 or named_tests:  # one process: asked for, or the user named the tests to run
        return subprocess.call([sys.executable, "-m", "pytest", *pytest_args], cwd=REPO)
    # one intra-op thread per process and per command it starts: the processes fill the cores
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    logs_dir = Path(tempfile.mkdtemp(prefix="reslab-tests-"))
    procs = []
    started = time.monotonic()

    def stop(signum, _frame):
        for p, _ in procs:
            try:
                os.killpg(p.pid, signum)
            except ProcessLookupError:
                pass
        for p, _ in procs:
            p.wait()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)  # before any process starts: none is left behind
    for i, share in enumerate(shares(args.workers)):
        log = open(logs_dir / f"share-{i}.log", "w")
        print(f"[{i}] pytest {' '.join(share)}", flush=True)
        cmd = [sys.executable, "-m", "pytest", *pytest_args, *share]
        procs.append((subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True), log))
    while any(p.poll() is None for p, _ in procs):  # progress: each share's last "[ NN%]" every 30 s
        time.sleep(0.5)
        if int(time.monotonic() - started) % 30 == 0:
            done = [_last_percent(logs_dir / f"share-{i}.log") for i in range(len(procs))]
            print(f"{time.monotonic() - started:4.0f} s: " + ", ".join(f"[{i}] {d}" for i, d in enumerate(done)), flush=True)
            time.sleep(0.5)
    codes = []
    for p, log in procs:
        code = p.wait()
        codes.append(0 if code == 5 else code)  # 5: a share with no test selected (-m, -k), nothing failed
        log.close()
    for i, (p, _) in enumerate(procs):
        print(f"\n===== share {i} (exit {p.returncode}) =====", flush=True)
        sys.stdout.write((logs_dir / f"share-{i}.log").read_text(errors="replace"))
    print(f"\n{len(procs)} pytest processes in {time.monotonic() - started:.0f} s; exit statuses {codes}; logs in {logs_dir}")
    return next((c for c in codes if c != 0), 0)


def _last_percent(log: Path) -> str:
    text = log.read_text(errors="replace")[-4000:]
    at = text.rfind("%]")
    return text[text.rfind("[", 0, at) + 1 : at + 1].strip() if at > 0 else "starting"


if __name__ == "__main__":
    sys.exit(main())
