# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""Seeding, devices, determinism and progress: the one place where randomness is set up."""
from __future__ import annotations

import os
import random
import sys
import time

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch from one integer (the global generators)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_determinism(threads: int) -> None:
    """Fix the thread count and ask torch for deterministic kernels (same machine, same numbers)."""
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    # cuBLAS needs this workspace setting to be deterministic on CUDA.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


class DeviceError(ValueError):
    """A device was requested that this machine does not have."""


def resolve_device(name: str) -> torch.device:
    """Map ``auto|cpu|cuda`` to a device; ``cuda`` without CUDA is an error, never a fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda was requested but this machine has no CUDA device; use --device cpu or auto")
    if name not in ("cpu", "cuda"):
        raise DeviceError(f"unknown device {name!r}; choose auto, cpu or cuda")
    return torch.device(name)


class Progress:
    """A status line on stderr: section, epoch, batch, running loss, time left.

    On a terminal it is redrawn in place twice a second; in a log file it is a new line every
    ``log_interval_s`` seconds, so logs stay short.
    """

    def __init__(self, section: str, stream=None, interval_s: float = 0.5, log_interval_s: float = 15.0):
        self.section = section
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval_s = interval_s if self.tty else log_interval_s
        self._last = time.perf_counter()
        self._start = self._last

    def update(self, epoch: int, epochs: int, batch: int, batches: int, loss: float) -> None:
        now = time.perf_counter()
        if now - self._last < self.interval_s:
            return
        self._last = now
        done = (epoch - 1) * batches + batch
        elapsed = now - self._start
        left = elapsed / max(done, 1) * (epochs * batches - done)
        line = (f"[{self.section}] epoch {epoch}/{epochs} batch {batch}/{batches} "
                f"loss {loss:.4f} elapsed {elapsed:5.0f}s left {left:5.0f}s")
        self.stream.write(f"\r{line} " if self.tty else f"{line}\n")
        self.stream.flush()

    def note(self, message: str) -> None:
        """A full line (a finished epoch, a checkpoint reused)."""
        self.stream.write(f"{chr(13) if self.tty else ''}[{self.section}] {message}\n")
        self.stream.flush()


@torch.no_grad()
def map_batches(fn, *tensors: torch.Tensor, batch_size: int = 1000):
    """Apply ``fn`` to aligned slices of ``tensors`` and concatenate its outputs (a tensor or a tuple)."""
    outs = [fn(*(t[i:i + batch_size] for t in tensors)) for i in range(0, len(tensors[0]), batch_size)]
    if isinstance(outs[0], tuple):
        return tuple(torch.cat(parts) for parts in zip(*outs))
    return torch.cat(outs)
