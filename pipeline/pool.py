# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""Sections computed in worker processes (or in this one with ``--jobs 1``), returning bytes only.

A ``Job`` holds plain values: the section's name and configuration, the data splits as NumPy
arrays, the device, seed and thread count, and for each upstream section the record (file name
and SHA-256) of its checkpoint. ``compute`` loads those checkpoints, seeds everything with the one
seed (a ``jitter`` run also moves the parameters by one rounding unit at each optimizer's first step), runs the module and encodes its figures and artifacts to bytes, so that the parent alone
writes files (``Runner.commit``). Workers (``workers.Workers``) are started with ``spawn`` (a fork after
torch has started its threads is unsafe), run torch on ``threads`` threads with deterministic kernels,
ignore SIGINT (the parent decides), die of SIGTERM and with the parent, and send their progress lines
to the parent through their pipe, whole lines only, so interleaved sections stay readable. A worker
that dies fails only its own section (``WorkerDied``, naming it); the other sections go on.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
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

from . import jitter, section_module
from .checkpoints import CheckpointStore
from .figures import encode_figure
from .workers import Workers


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
    jitter: int = 0  # rounding perturbation k of ``jitter.py`` (0: none)


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
    handle = jitter.install(job.jitter)
    start = time.perf_counter()
    try:
        result = module.run(job.config, ctx)
    finally:
        if handle is not None:
            handle.remove()
    wall = time.perf_counter() - start
    figures = {name: encode_figure(fig, f"{job.section}_{name}") for name, fig in result.figures.items()}
    checkpoint = store.encode(job.section, job.key, result.artifacts) if result.artifacts else None
    return Outcome(job.section, result.metrics, figures, checkpoint, wall)


_worker_stream: TextIO = sys.stderr


def _init_worker(stream: TextIO, threads: int) -> None:
    global _worker_stream
    configure_determinism(threads)
    _worker_stream = stream


class Inline:
    """``--jobs 1``: each job computed in this process when submitted, progress on ``stream``."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def submit(self, job: Job) -> cf.Future:
        future: cf.Future = cf.Future()
        future.set_result(compute(job, self.stream))
        return future

    def wait(self, futures, timeout: float | None = None) -> set[cf.Future]:
        return {f for f in futures if f.done()}

    def stop(self, kill: bool = False) -> None:
        pass


class Pool(Workers):
    """``jobs`` worker processes (started when first needed), their progress lines copied to ``stream``."""

    def __init__(self, jobs: int, threads: int, stream: TextIO):
        super().__init__(jobs, multiprocessing.get_context("spawn"), _init_worker, (threads,), stream)

    def submit(self, job: Job) -> cf.Future:
        return super().submit(f"section {job.section}", compute, job)
