# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""SIGINT and SIGTERM as an exception, and a critical section in which they wait.

Outside a critical section a signal raises ``Interrupted`` at once, abandoning the section being
computed (nothing of it has been written). Inside one, such as writing a section's figures,
checkpoint and registry entry, or stopping the worker processes, the signal is held and raised when
the block is done, so those files are all written or none, and a second Ctrl-C a moment after the
first cannot cut short the cleanup that kills the workers (which would leave them running, and the
lock held, until they finished on their own).
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_stopping: list[int] = []  # the signals that arrived in ``interruptible``


class Interrupted(BaseException):
    """Raised in the main thread when SIGINT or SIGTERM arrives."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _stop(signum: int) -> None:
    _stopping.append(signum)
    raise Interrupted(signum)


@contextlib.contextmanager
def interruptible(final: bool = False):
    """Turn SIGINT/SIGTERM into ``Interrupted`` for the duration; restore the old handlers after. With
    ``final`` (the process ends after the block) a signal that stopped the block leaves both ignored instead,
    so that another one cannot interrupt the exit itself (its status, 130 or 143, is then always given)."""
    _stopping.clear()
    old = {s: signal.signal(s, lambda signum, frame: _stop(signum)) for s in SIGNALS}
    try:
        yield
    finally:
        stopped = bool(_stopping)
        for s, handler in old.items():
            signal.signal(s, signal.SIG_IGN if final and stopped else handler)
        _stopping.clear()


@contextlib.contextmanager
def blocked():
    """Block SIGINT/SIGTERM (delivered when the block ends): around starting a process, whose fork handlers
    would swallow the exception a handler raises there, and whose child must not run the parent's handler."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def critical():
    """Hold SIGINT/SIGTERM until the block ends, then raise ``Interrupted`` for the first one held."""
    pending: list[int] = []
    old = {s: signal.signal(s, lambda signum, frame: pending.append(signum)) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    if pending:
        _stop(pending[0])


def child_of(parent: int) -> None:
    """In a worker process: ignore SIGINT, which reaches the whole process group while the parent decides;
    die of SIGTERM (a forked worker inherits the parent's handler, which would turn it into an exception the
    worker survives); and die with ``parent`` (Linux: PR_SET_PDEATHSIG)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)  # blocked by the parent while it started this process
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)
