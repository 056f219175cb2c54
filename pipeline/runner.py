# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""Runs sections side by side, reusing fresh ones, and commits each finished section atomically.

A ready queue over the sections' ``REQUIRES``: a section asked for is examined once every section
it requires that this run is bringing up to date is done. If its registry entry and checkpoint
match the current cache key it is reused; otherwise its missing or stale upstream sections are
pulled in (and the runner says so), and once they are done it is computed, in a worker process
when ``jobs`` > 1 (``pool.py``). The parent alone writes: each section's figures, checkpoint and
registry entry together with signals held, in the order sections finish.
"""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import datetime as dt
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import matplotlib
import numpy as np
import torch
import torchvision

from experiments.lib import data as mnist

from . import MODULES, SECTIONS, section_module  # noqa: F401  (re-exported: the sections and their order)
from .cache import ROOT, CacheKey, code_files, jsonable_config, make_key, stale_reasons
from .checkpoints import CheckpointError, CheckpointMissing, CheckpointStore
from .interrupts import critical
from .pool import Inline, Job, Outcome, Pool, pack
from .registry import Registry, atomic_write

COMMITTED = ROOT / "report" / "results.json"  # the repository's registry: section durations where --out has none


@dataclass(frozen=True)
class Options:
    out: Path  # the output folder: results.json, figures/, PDFs
    checkpoints: Path  # where section artifacts are kept
    data_dir: Path  # holds MNIST/raw/
    device: torch.device
    seed: int
    threads: int
    smoke: bool = False  # tiny configurations and splits
    force: bool = False  # rerun the sections asked for even when fresh
    jobs: int = 1  # sections computed at the same time, each in its own process (1: in this process)
    jitter: int = 0  # rounding perturbation k (``jitter.py``; 0: none), for ``--spread --jitter`` alone

    @property
    def split(self) -> mnist.SplitSpec:
        return mnist.SMOKE_SPLIT if self.smoke else mnist.SplitSpec()


def environment(opts: Options) -> dict[str, Any]:
    """What, besides code and data, decides the numbers: library versions, device and its model, threads."""
    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": np.__version__, "matplotlib": matplotlib.__version__, "device": opts.device.type,
            "device_name": device_name(opts.device), "threads": opts.threads}


def git_state() -> dict[str, Any]:
    """The commit the code was at, and whether code (not the generated report) differed from it."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    try:
        dirty = git("status", "--porcelain", "--", "experiments", "pipeline", "templates", "reproduce.py", "author.toml")
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(dirty)}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")), None)
    return cpu or platform.processor() or platform.machine()


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


class Runner:
    def __init__(self, opts: Options, stream: TextIO | None = None):
        self.opts = opts
        self.stream = stream if stream is not None else sys.stderr
        self.registry = Registry(opts.out / "results.json")
        self.store = CheckpointStore(opts.checkpoints, opts.out / "results.json")
        self.git = git_state()
        self.env = environment(opts)
        self._splits: mnist.Splits | None = None
        self._packed: dict | None = None
        self._code: dict[str, dict[str, str]] = {}  # section -> hashes of the code this process imported
        self.executed: list[str] = []  # sections computed by this run, in the order they finished
        self._durations: dict[str, float] | None = None  # section -> seconds it last took (``durations``)

    def say(self, section: str, message: str) -> None:
        self.stream.write(f"[{section}] {message}\n")
        self.stream.flush()

    def splits(self) -> mnist.Splits:
        if self._splits is None:
            self._splits = mnist.load_splits(self.opts.data_dir, self.opts.seed, self.opts.split)
        return self._splits

    def config(self, name: str):
        module = section_module(name)
        return module.SMOKE if self.opts.smoke else module.Config()

    def key(self, name: str) -> CacheKey:
        module = section_module(name)
        if name not in self._code:  # hashed once, when first imported: edits during a run do not count
            self._code[name] = code_files(module)
        config = {"config": jsonable_config(self.config(name)), "seed": self.opts.seed, "smoke": self.opts.smoke}
        # the files are checked against these sums before any use, so the sums identify the data
        data = {"md5": dict(mnist.RAW_MD5), "split": dataclasses.asdict(self.opts.split), "seed": self.opts.seed}
        # an upstream section counts by what decided it (its key) and by what it produced (its checkpoint)
        upstream = {u: [self.key(u).digest, self.output(u)] for u in module.REQUIRES}
        return make_key(config, self._code[name], data, self.env, upstream)

    def output(self, name: str) -> str | None:
        """The SHA-256 of a section's recorded checkpoint (None before it has one)."""
        entry = self.registry.entry(name)
        return entry["checkpoint"]["sha256"] if entry and entry.get("checkpoint") else None

    def status(self, name: str) -> list[str]:
        """Why ``name`` must be rerun, in words; empty when its results, figures and checkpoint are fresh
        (the checkpoint read back: its checksum, section and cache key). A checkpoint that is absent (a fresh
        clone) leaves the results fresh: the weights are recomputed only when a stale section needs them."""
        entry = self.registry.entry(name)
        reasons = self.registry.problems(name) or stale_reasons(entry, self.key(name), self.env)
        if not reasons and entry.get("checkpoint"):
            try:
                self.store.load(entry, name, torch.device("cpu"))
            except CheckpointMissing:
                pass
            except CheckpointError as err:
                reasons = [str(err)]
        return reasons

    def weightless(self, name: str) -> str | None:
        """The path of ``name``'s recorded checkpoint when that file is absent (None when it is there or none is kept)."""
        record = (self.registry.entry(name) or {}).get("checkpoint")
        path = self.store.folder / record["file"] if record else None
        return str(path) if path is not None and not path.exists() else None

    def run(self, selected: list[str]) -> None:
        """Bring the selected sections up to date, computing up to ``jobs`` of them at a time."""
        self._wanted = {name: None for name in SECTIONS if name in selected}  # section -> the section needing it
        self._state: dict[str, str] = {}  # section -> "stale" (decided, waiting), "running" or "done"
        self._why: dict[str, list[str]] = {}
        self._reused: set[str] = set()  # sections found fresh and not computed
        pool = Pool(self.opts.jobs, self.opts.threads, self.stream) if self.opts.jobs > 1 else Inline(self.stream)
        running: dict[cf.Future, tuple[str, CacheKey]] = {}
        failure: BaseException | None = None
        try:
            while True:
                self.decide()
                if failure is None:
                    for name in self.ready()[:self.opts.jobs - len(running)]:
                        key = self.key(name)
                        running[self.submit(pool, name)] = (name, key)
                if not running:
                    break
                finished = pool.wait(running, timeout=0.2)
                for future in finished:
                    name, key = running.pop(future)
                    if future.exception() is not None:  # the others finish and are kept; then it is raised
                        failure = failure or future.exception()
                        continue
                    with critical():
                        self.commit(name, key, future.result())
                    self._state[name] = "done"
                    self.executed.append(name)
                    self.say(name, f"done in {future.result().wall_time_s:.1f}s")
        except BaseException:
            pool.stop(kill=True)
            raise
        pool.stop()
        if failure is not None:
            raise failure

    def decide(self) -> None:
        """Examine every wanted section whose wanted upstream sections are done: fresh ones are reused,
        stale ones pull in their own upstream sections; until nothing changes."""
        changed = True
        while changed:
            changed = False
            for name in SECTIONS:
                if name not in self._wanted or name in self._state:
                    continue
                requires = section_module(name).REQUIRES
                if any(u in self._wanted and self._state.get(u) != "done" for u in requires):
                    continue
                changed = True
                reasons = self.status(name)
                needed_by = self._wanted[name]
                if not reasons and needed_by is not None and (path := self.weightless(name)):
                    reasons = [f"its checkpoint {path} is missing"]
                if not reasons and not (self.opts.force and needed_by is None):
                    self.say(name, "fresh: results reused" + ("" if needed_by else " (--force reruns it)"))
                    self._state[name] = "done"
                    self._reused.add(name)
                    continue
                self.splits()  # a data error surfaces before anything is announced
                self._state[name], self._why[name] = "stale", reasons
                for upstream in requires:
                    self._wanted.setdefault(upstream, name)
                    if upstream in self._reused and self.weightless(upstream):
                        self.reopen(upstream, name)

    def reopen(self, name: str, needed_by: str) -> None:
        """Examine again a section reused without its checkpoint, which ``needed_by`` (stale) needs, and every
        section reused on the strength of its checkpoint, directly or not: their turn comes once it is recomputed."""
        self._wanted[name] = needed_by
        todo = [name]
        while todo:
            current = todo.pop()
            self._reused.discard(current)
            del self._state[current]
            todo += [n for n in self._reused if current in section_module(n).REQUIRES and n not in todo]

    def ready(self) -> list[str]:
        """Stale sections whose upstream sections are all done: in the report's order with one job; with
        more, the longest chain of work first (``chains``), so that no long section starts last and runs alone."""
        ready = [n for n in SECTIONS if self._state.get(n) == "stale"
                 and all(self._state.get(u) == "done" for u in section_module(n).REQUIRES)]
        if self.opts.jobs == 1:
            return ready
        chain = self.chains()
        return sorted(ready, key=lambda n: -chain[n])

    def chains(self) -> dict[str, float]:
        """Each section's seconds (``durations``; 1 for one never timed) plus the longest chain of sections that
        require it, one after another: list scheduling by this "bottom level" starts the critical path first."""
        seconds, chain = self.durations(), {}

        def length(name: str) -> float:
            if name not in chain:
                after = [length(m) for m in SECTIONS if name in section_module(m).REQUIRES]
                chain[name] = seconds.get(name, 1.0) + max(after, default=0.0)
            return chain[name]

        return {name: length(name) for name in SECTIONS}

    def durations(self) -> dict[str, float]:
        """Each section's last recorded wall time in seconds, from --out's registry or else the repository's own
        report/results.json (a fresh output folder has none): a hint for the order of jobs, never a result."""
        if self._durations is None:
            fallback = Registry(COMMITTED) if COMMITTED.is_file() else None
            self._durations = {}
            for name in SECTIONS:
                entry = self.registry.entry(name) or (fallback.entry(name) if fallback else None)
                if entry and isinstance(entry.get("wall_time_s"), (int, float)):
                    self._durations[name] = float(entry["wall_time_s"])
        return self._durations

    def submit(self, pool, name: str) -> cf.Future:
        reasons, needed_by = self._why[name], self._wanted[name]
        why = "; ".join(reasons) if reasons else "--force"
        if any(r.startswith("checkpoint ") and not r.endswith("is missing") for r in reasons):
            self.say(name, f"warning: {why}; recomputing it")
        self.say(name, f"needed by {needed_by}, running it first ({why})" if needed_by else f"running ({why})")
        if self._packed is None:
            self._packed = pack(self.splits())
        upstream = {u: {k: self.registry.entry(u)[k] for k in ("checkpoint", "cache_key")} for u in section_module(name).REQUIRES}
        job = Job(section=name, config=self.config(name), key=self.key(name).digest, data=self._packed,
                  device=str(self.opts.device), seed=self.opts.seed, smoke=self.opts.smoke,
                  checkpoints=str(self.opts.checkpoints), registry=str(self.opts.out / "results.json"), upstream=upstream,
                  jitter=self.opts.jitter)
        self._state[name] = "running"
        return pool.submit(job)

    def commit(self, name: str, key: CacheKey, outcome: Outcome) -> None:
        """Build everything first (a failure writes nothing), then write the figures, the checkpoint
        and last the registry entry that points at both; only then drop the older checkpoints. The registry
        is read again first (under the output folder's lock), so no other run's commit is lost."""
        self.registry.reload()
        module, cfg = section_module(name), self.config(name)
        source = Path(module.__file__).resolve().relative_to(ROOT).as_posix()
        files, figures = {}, {}
        for fig_name, (payload, record) in outcome.figures.items():
            files[self.opts.out / "figures" / record["file"]] = payload
            figures[fig_name] = {**record, "file": f"figures/{record['file']}", "module": source}
        payload, checkpoint = outcome.checkpoint or (None, None)
        provenance = self.provenance()
        entry = {
            "title": module.TITLE, "module": source, "metrics": outcome.metrics, "figures": figures,
            "config": jsonable_config(cfg), "seed": self.opts.seed, "smoke": self.opts.smoke,
            "wall_time_s": outcome.wall_time_s, "finished_at": provenance["time"], "cache_key": key.digest,
            "key_parts": key.parts, "code_files": key.files, "checkpoint": checkpoint,
            "env": self.env, "provenance": provenance,
        }
        registry = self.registry.prepare(name, entry, provenance)
        for path, data in files.items():
            atomic_write(path, data)
        if checkpoint:
            self.store.write(payload, checkpoint)
        self.registry.write(*registry)
        self.store.prune(name, checkpoint)

    def provenance(self) -> dict[str, Any]:
        splits = self.splits()
        return {
            **self.git, **self.env, "platform": platform.platform(), "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "seed": self.opts.seed, "data_md5": splits.md5, "split_spec": dataclasses.asdict(splits.spec),
            "split_sizes": {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)},
        }
