"""Processes and signals: the main process stops at a safe point on a signal; its worker
processes leave stopping to it and never outlive it.

Ctrl-C sends SIGINT to the terminal's whole foreground process group; `timeout`, `kill -- -PGID`,
Slurm and Kubernetes send SIGTERM, to the process or to every process of the job. So:

Main process (`stop_on_signals`). SIGINT and SIGTERM raise `Interrupted` (a KeyboardInterrupt
that carries the signal) at the next safe point. Inside a `critical()` region (an optimizer step
and its bookkeeping, a checkpoint write, an index commit) the region finishes first: stopping
halfway would leave a state that no checkpoint can describe. Elsewhere (waiting for data,
evaluating) the stop is immediate. A second signal during a critical region, or while the stop
saves its work, stops at once with `safe=False`: the caller then keeps its previous checkpoint
instead of writing one. "Second" means a new request, at least `SAME_REQUEST_S` after the first:
the same signal arriving twice within that time is one request delivered twice (a signal to the
group beside one to the process; torchrun's agent forwarding to its workers the SIGTERM that the
group already gave them), and must not cost the checkpoint.

Workers (`WorkerInit`, for DataLoader workers and decode pools). They ignore SIGINT and SIGTERM
from anyone but their parent (whose SIGTERM is how a pool terminates them), so a signal to the
group reaches the main process alone; and they die with their parent (Linux: the kernel's
parent-death signal; elsewhere a thread watching the parent's pid), so a `kill -9` of the main
process leaves none behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import multiprocessing.pool
import os
import platform
import signal
import sys
import threading
import time
from typing import Callable, Iterator

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_POLL_SECONDS = 0.5  # the watchdog's period where the kernel cannot watch the parent
SAME_REQUEST_S = 1.0  # launchers forward a signal within milliseconds; a person asks again after seconds


class Interrupted(KeyboardInterrupt):
    """A stop asked for by a signal. `safe`: raised at a safe point (the state is consistent)."""

    def __init__(self, signum: int, safe: bool = True):
        super().__init__(signal_name(signum))
        self.signum, self.safe = int(signum), safe

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # what a shell reports for a process ended by that signal


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def exit_code_of(interrupt: KeyboardInterrupt) -> int:
    """128 + the signal's number: 130 for Ctrl-C (a KeyboardInterrupt raised by Python itself), 143 for SIGTERM."""
    return getattr(interrupt, "exit_code", 128 + signal.SIGINT)


class StopRequests:
    """The main process's side: see the module docstring. Made by `stop_on_signals()`."""

    def __init__(self):
        self.pending: int | None = None  # a signal that arrived during a critical region
        self._critical = 0
        self._first_at: float | None = None  # when the stop was first asked for (time.monotonic)

    def handle(self, signum, frame) -> None:
        now = time.monotonic()
        if self._first_at is not None:
            if now - self._first_at < SAME_REQUEST_S:
                return  # the first request, delivered again
            raise Interrupted(signum, safe=False)  # asked again: the stop (pending, or saving) is cut short
        self._first_at = now
        if not self._critical:
            raise Interrupted(signum)
        self.pending = signum
        log.warning("%s: stopping once the current step is saved (send it again to stop at once, without saving)",
                    signal_name(signum))

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        """A region that a first signal does not cut short."""
        self._critical += 1
        try:
            yield
        finally:
            self._critical -= 1

    def check(self) -> None:
        """At a safe point: stop now if a signal came during the last critical region."""
        if self.pending is not None and not self._critical:
            signum, self.pending = self.pending, None
            raise Interrupted(signum)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequests]:
    """Handle SIGINT and SIGTERM as stop requests while the block runs (then restore the handlers).

    From a thread other than the main one, handlers cannot be installed: the requests object is
    inert and the process keeps its own handling."""
    requests = StopRequests()
    if threading.current_thread() is not threading.main_thread():
        yield requests
        return
    previous = {s: signal.signal(s, requests.handle) for s in STOP_SIGNALS}
    try:
        yield requests
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


# ------------------------------------------------------------------------------------- workers


@contextlib.contextmanager
def stop_signals_blocked() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back in this thread while it starts worker processes.

    A forked child starts with the signals blocked, so one sent to the group in the instant
    before its `WorkerInit` runs waits for it (and is discarded) instead of killing the child.
    The parent receives its own copy when the block ends."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class WorkerInit:
    """The first thing a worker process runs: a pool's `initializer`, a DataLoader's `worker_init_fn`.

    Made in the parent (it records the parent's pid); picklable, so it works with fork and spawn.
    `then(*args)` runs after, for the worker's own set-up.
    """

    def __init__(self, then: Callable | None = None):
        self.parent_pid = os.getpid()
        self.then = then

    def __call__(self, *args) -> None:
        leave_stop_signals_to(self.parent_pid)
        die_with_parent(self.parent_pid)
        if self.then is not None:
            self.then(*args)


def leave_stop_signals_to(parent_pid: int) -> None:
    """Ignore SIGINT and SIGTERM, except a SIGTERM from `parent_pid`, which ends this process."""
    if hasattr(signal, "sigwaitinfo"):  # Linux and most Unixes: the sender's pid is known
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # every thread started from here on too
        threading.Thread(target=_take_stop_signals, args=(parent_pid,), name="reslab-stop-signals", daemon=True).start()
        return
    # macOS, Windows: no sender; ignore both (a pool's terminate then waits for the parent's exit,
    # which the watchdog of `die_with_parent` turns into this worker's)
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)


def _take_stop_signals(parent_pid: int) -> None:
    while True:
        info = signal.sigwaitinfo(STOP_SIGNALS)
        if info.si_signo == signal.SIGTERM and info.si_pid == parent_pid:
            os._exit(0)  # the parent terminates its pool (or exits): end quietly, as torch's workers do


def die_with_parent(parent_pid: int) -> None:
    """Make sure this process ends when `parent_pid` (its parent) does, even by SIGKILL."""
    if sys.platform.startswith("linux") and _set_parent_death_signal(signal.SIGKILL):
        # The kernel fires the death signal when the thread that forked us ends: the pools and
        # loaders of this package are started from the thread that runs them to the end.
        if os.getppid() != parent_pid:  # the parent died before the request was made
            os._exit(1)
        return
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="reslab-parent-watch", daemon=True).start()


def _set_parent_death_signal(signum: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)


@contextlib.contextmanager
def worker_pool(workers: int) -> Iterator[multiprocessing.pool.Pool | None]:
    """A `multiprocessing.Pool` of `workers` processes started with `WorkerInit` (None for fewer
    than 2), terminated when the block ends, on success, error or interrupt alike.

    multiprocessing.Pool rather than ProcessPoolExecutor: on an error or Ctrl-C it terminates its
    workers, where cancelling an executor's pending futures can hang (CPython gh-94440)."""
    if workers < 2:
        yield None
        return
    with stop_signals_blocked():
        pool = multiprocessing.Pool(workers, initializer=WorkerInit())
    try:
        yield pool
    finally:
        pool.terminate()
        pool.join()


class FolderLock:
    """An exclusive advisory lock on a folder (a run, an index) for as long as one process works in
    it: a second process gets a ReslabError naming the holder instead of overwriting its files.
    The kernel releases it when the holder ends, even by kill -9, so a stale lock cannot remain.
    Where `fcntl` is missing (Windows) it locks nothing."""

    NAME = ".lock"

    def __init__(self, folder, what: str):
        self.path = os.path.join(os.fspath(folder), self.NAME)
        self.what = what
        self._file = None

    def __enter__(self) -> "FolderLock":
        try:
            import fcntl
        except ImportError:
            return self
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            from .errors import ReslabError

            raise ReslabError(f"{self.what} is in use by {holder}; wait for it to finish or stop it first") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {platform.node()}")
        handle.flush()
        self._file = handle
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor releases the lock
            self._file = None
