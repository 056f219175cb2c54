# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""SIGINT and SIGTERM as an exception, and a critical section in which they wait.

Outside a critical section a signal raises ``Interrupted`` at once, abandoning the section being
computed (nothing of it has been written). Inside one, such as writing a section's figures,
checkpoint and registry entry, the signal is held and raised when the section is done, so those
files are all written or none.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """Raised in the main thread when SIGINT or SIGTERM arrives."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise(signum, frame):
    raise Interrupted(signum)


@contextlib.contextmanager
def interruptible():
    """Turn SIGINT/SIGTERM into ``Interrupted`` for the duration; restore the old handlers after."""
    old = {s: signal.signal(s, _raise) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


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
        raise Interrupted(pending[0])


def child_of(parent: int) -> None:
    """In a worker process: die with ``parent`` (Linux: PR_SET_PDEATHSIG) and ignore SIGINT, which
    reaches the whole process group while the parent decides."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
