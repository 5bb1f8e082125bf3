"""Keep this thread's alternate signal stack when a native library replaces it.

OpenVINO (2026.4) gives the thread that compiles a model its own alternate signal stack
(`sigaltstack`), and a compiled model puts back the stack it found when it is released. Released in
another order than made (as `--runtime auto`'s calibration releases the candidates it did not
pick), the thread is left pointing at freed memory; Python's signal handlers run on the alternate
stack (SA_ONSTACK), so the next SIGTERM or Ctrl-C killed the process with SIGSEGV instead of
running the handler (seen in the test suite; reproduced in tests/inference/test_runtimes.py).
Restoring the thread's own stack right after each OpenVINO call that sets one makes every
model's later "put back" restore that same stack. Linux only; elsewhere this does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys


class _StackT(ctypes.Structure):  # struct stack_t from <signal.h>
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


@contextlib.contextmanager
def keep_signal_stack():
    """Run the body, then restore the calling thread's alternate signal stack as it was."""
    if not sys.platform.startswith("linux"):
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    before = _StackT()
    saved = libc.sigaltstack(None, ctypes.byref(before)) == 0
    try:
        yield
    finally:
        if saved:
            libc.sigaltstack(ctypes.byref(before), None)
