# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""Sections computed in worker processes (or in this one with ``--jobs 1``), returning bytes only.

A ``Job`` holds plain values: the section's name and configuration, the data splits as NumPy
arrays, the device, seed and thread count, and for each upstream section the record (file name
and SHA-256) of its checkpoint. ``compute`` loads those checkpoints, seeds everything with the one
seed, runs the module and encodes its figures and artifacts to bytes, so that the parent alone
writes files (``Runner.commit``). Workers are started with ``spawn`` (a fork after torch has
started its threads is unsafe), run torch on ``threads`` threads with deterministic kernels,
ignore SIGINT (the parent decides), die with the parent (Linux: PR_SET_PDEATHSIG), and send their
progress lines to the parent through a queue, whole lines only, so interleaved sections stay readable.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import queue as queue_module
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

import matplotlib
import torch

from experiments.lib import data as mnist
from experiments.lib.contract import Context
from experiments.lib.plotting import STYLE
from experiments.lib.runtime import Progress, configure_determinism, seed_everything

from . import section_module
from .checkpoints import CheckpointStore
from .figures import encode_figure
from .interrupts import child_of


@dataclass(frozen=True)
class Job:
    section: str
    config: Any  # the module's frozen Config
    key: str  # the section's cache key, filed with its checkpoint
    data: dict  # the splits as plain arrays (``pack``)
    device: str  # "cpu" or "cuda"
    seed: int
    smoke: bool
    checkpoints: str  # the checkpoint folder
    registry: str  # the results.json the checkpoints are filed for
    upstream: dict[str, dict]  # required section -> {"checkpoint": {"file", "sha256"}, "cache_key"} of its entry


@dataclass(frozen=True)
class Outcome:
    section: str
    metrics: dict
    figures: dict[str, tuple[bytes, dict]]  # figure name -> (file bytes, record without folder)
    checkpoint: tuple[bytes, dict] | None  # the checkpoint's bytes and record, None when the section keeps no artifacts
    wall_time_s: float  # time spent in ``run``


SPLITS = ("train", "val", "test", "full_train")


def pack(splits: mnist.Splits) -> dict:
    """Splits as NumPy arrays and plain values: pickled as bytes, never through shared memory."""
    parts = {name: tuple(t.numpy() for t in (s.x, s.y, s.index)) for name in SPLITS if (s := getattr(splits, name)) is not None}
    return {**parts, "md5": splits.md5, "spec": splits.spec}


def unpack(packed: dict) -> mnist.Splits:
    split = {name: mnist.Split(*(torch.from_numpy(a) for a in packed[name])) for name in SPLITS if name in packed}
    return mnist.Splits(**split, md5=packed["md5"], spec=packed["spec"])


def compute(job: Job, stream: TextIO | None = None) -> Outcome:
    """Run one section from plain inputs; the numbers do not depend on the process it runs in."""
    module, device = section_module(job.section), torch.device(job.device)
    store = CheckpointStore(job.checkpoints, job.registry)
    # upstream artifacts are loaded before seeding, so reading them draws no random numbers
    upstream = {name: store.load(entry, name, device) for name, entry in job.upstream.items()}
    ctx = Context(data=unpack(job.data), device=device, seed=job.seed, smoke=job.smoke,
                  progress=Progress(job.section, stream if stream is not None else _worker_stream),
                  require=upstream.__getitem__)
    # every section's figures in the report's style, also those of a module that imports no plotting (sup)
    matplotlib.rcParams.update(STYLE)
    seed_everything(job.seed)
    start = time.perf_counter()
    result = module.run(job.config, ctx)
    wall = time.perf_counter() - start
    figures = {name: encode_figure(fig, f"{job.section}_{name}") for name, fig in result.figures.items()}
    checkpoint = store.encode(job.section, job.key, result.artifacts) if result.artifacts else None
    return Outcome(job.section, result.metrics, figures, checkpoint, wall)


class QueueStream:
    """A worker's progress stream: each write goes to the parent as one item (never a terminal)."""

    def __init__(self, queue):
        self.queue = queue

    def write(self, text: str) -> None:
        self.queue.put(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


_worker_stream: TextIO = sys.stderr


def _init_worker(queue, threads: int, parent: int) -> None:
    global _worker_stream
    child_of(parent)
    configure_determinism(threads)
    _worker_stream = QueueStream(queue)


class Inline:
    """``--jobs 1``: each job computed in this process when submitted, progress on ``stream``."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def submit(self, job: Job) -> cf.Future:
        future: cf.Future = cf.Future()
        future.set_result(compute(job, self.stream))
        return future

    def drain(self) -> None:
        pass

    def stop(self, kill: bool = False) -> None:
        pass


class Pool:
    """``jobs`` worker processes (started when first needed) and the queue of their progress lines."""

    def __init__(self, jobs: int, threads: int, stream: TextIO):
        context = multiprocessing.get_context("spawn")
        self.stream, self.queue = stream, context.Queue()
        self.executor = cf.ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker,
                                               initargs=(self.queue, threads, os.getpid()))

    def submit(self, job: Job) -> cf.Future:
        return self.executor.submit(compute, job)

    def drain(self) -> None:
        """Copy the workers' progress lines to the stream."""
        while True:
            try:
                self.stream.write(self.queue.get_nowait())
            except queue_module.Empty:
                break
        self.stream.flush()

    def stop(self, kill: bool = False) -> None:
        """Release the pool; with ``kill``, kill the workers first (a section still computing is abandoned)."""
        if kill:
            for process in list((getattr(self.executor, "_processes", None) or {}).values()):
                process.kill()
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.drain()
