"""Stop requests in the main process; worker processes that leave signals to their parent and die with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from reslab import processes
from reslab.processes import Interrupted, exit_code_of, stop_on_signals
from tests.process_tools import alive, kill_group


def test_a_signal_outside_a_critical_region_stops_at_once():
    with stop_on_signals():
        with pytest.raises(Interrupted) as stopped:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler runs before this ends
    assert stopped.value.signum == signal.SIGTERM and stopped.value.safe and stopped.value.exit_code == 143


def test_a_critical_region_finishes_before_the_stop():
    finished = False
    with stop_on_signals() as stop:
        with stop.critical():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            finished = True
        assert stop.pending == signal.SIGINT
        with pytest.raises(Interrupted) as stopped:
            stop.check()
    assert finished and stopped.value.safe and exit_code_of(stopped.value) == 130


def test_a_second_signal_stops_a_critical_region_at_once_and_says_it_is_unsafe(monkeypatch):
    monkeypatch.setattr(processes, "SAME_REQUEST_S", 0.1)
    with stop_on_signals() as stop:
        with pytest.raises(Interrupted) as stopped:
            with stop.critical():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.2)
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
    assert not stopped.value.safe


def test_the_same_signal_delivered_twice_at_once_is_one_request():
    # SIGTERM to the group and torchrun's agent forwarding it: both reach a worker within milliseconds
    finished = False
    with stop_on_signals() as stop:
        with stop.critical():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            finished = True
        assert stop.pending == signal.SIGTERM
        with pytest.raises(Interrupted) as stopped:
            stop.check()
        # ... also while the stop saves its work: a repeat then does not cut the save short
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
    assert finished and stopped.value.safe


def test_handlers_are_restored_and_plain_ctrl_c_keeps_its_exit_code():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with stop_on_signals():
        pass
    assert {s: signal.getsignal(s) for s in before} == before
    assert exit_code_of(KeyboardInterrupt()) == 130


PARENT = textwrap.dedent("""
    import os, sys, time
    from reslab.processes import worker_pool

    with worker_pool(2) as pool:
        pids = sorted(p.pid for p in pool._pool)
        if sys.argv[1] == "busy":
            pool.map_async(time.sleep, [600, 600], chunksize=1)  # decoding a huge file, say
            time.sleep(0.5)
        print(" ".join(map(str, pids)), flush=True)
        sys.stdin.readline()  # the test has sent its signals (or kills this process meanwhile)
    print("pool terminated", flush=True)  # worker_pool's exit: terminate() + join() returned
""")


def _start_parent(mode: str = "idle") -> tuple[subprocess.Popen, list[int]]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    parent = subprocess.Popen([sys.executable, "-c", PARENT, mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=env, start_new_session=True)
    workers = [int(p) for p in parent.stdout.readline().split()]
    assert len(workers) == 2, "the pool did not start"
    return parent, workers


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_ignore_signals_from_others_and_leave_with_their_pool():
    parent, workers = _start_parent()
    try:
        for pid in workers:
            os.kill(pid, signal.SIGTERM)  # from the test: not the parent
            os.kill(pid, signal.SIGINT)
        time.sleep(0.5)
        assert all(alive(pid) for pid in workers)
        parent.stdin.write("go\n")
        parent.stdin.flush()
        assert parent.stdout.readline().strip() == "pool terminated"  # the parent's SIGTERM still ends them
        assert parent.wait(timeout=60) == 0
    finally:
        kill_group(parent.pid)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_busy_workers_die_with_a_killed_parent():
    # issue 12, defect 4: kill -9 of the main process left its decode workers running
    parent, workers = _start_parent("busy")
    try:
        parent.kill()
        parent.wait(timeout=30)
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(pid) for pid in workers)
    finally:
        kill_group(parent.pid)


HOLDER = textwrap.dedent("""
    import sys, time
    from reslab.processes import FolderLock

    with FolderLock(sys.argv[1], "the run"):
        print("locked", flush=True)
        time.sleep(600)
""")


def test_a_folder_lock_refuses_a_second_writer_and_dies_with_its_holder(tmp_path):
    from reslab.errors import ReslabError
    from reslab.processes import FolderLock

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env,
                              start_new_session=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ReslabError, match=rf"the run is in use by process {holder.pid} on "):
            FolderLock(tmp_path, "the run").__enter__()
        holder.kill()  # kill -9: the kernel releases the lock, no stale lock file to clean by hand
        holder.wait(timeout=30)
        with FolderLock(tmp_path, "the run"):
            pass
    finally:
        kill_group(holder.pid)
