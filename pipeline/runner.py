"""Runs sections in order, reusing fresh ones, and commits each finished section atomically.

For each section asked for: if its registry entry and checkpoint match the current cache key it
is reused; otherwise its upstream sections are brought up to date first (a missing or stale one
is rerun, and the runner says so), everything is seeded with the one seed, ``run`` computes, and
its figures, checkpoint and registry entry are written together with signals held.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

import matplotlib
import numpy as np
import torch
import torchvision

from experiments import data as mnist
from experiments.contract import Context
from experiments.runtime import Progress, seed_everything

from . import SECTIONS  # noqa: F401  (the order in which sections run)
from .cache import ROOT, CacheKey, code_files, jsonable_config, make_key, stale_reasons
from .checkpoints import CheckpointError, CheckpointStore
from .figures import encode_figure
from .interrupts import critical
from .registry import Registry, atomic_write

MODULES = {
    "sup": "experiments.sup_classification",
    "q1": "experiments.q1_vae",
    "q2": "experiments.q2_sampling",
    "q3": "experiments.q3_latent_opt",
    "q3x_sparse": "experiments.q3x_sparse",
    "q3x_rowadam": "experiments.q3x_rowadam",
    "q3x_long": "experiments.q3x_long",
    "q4": "experiments.q4_loglik",
    "q4conv": "experiments.q4_convergence",
    "extra_beta": "experiments.extra_beta",
    "extra_range": "experiments.extra_range",
    "extra": "experiments.extra",
    "tor_vae": "experiments.tor_vae",
    "tor_posterior": "experiments.tor_posterior",
    "tor_grad": "experiments.tor_grad",
    "stan_vae": "experiments.stan_vae",
    "dtu_vae": "experiments.dtu_vae",
    "dtu_gauss": "experiments.dtu_gauss",
    "ein_vae": "experiments.ein_vae",
}


def section_module(name: str) -> ModuleType:
    return importlib.import_module(MODULES[name])


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
        self._code: dict[str, dict[str, str]] = {}  # section -> hashes of the code this process imported
        self._artifacts: dict[str, dict] = {}
        self._done: set[str] = set()
        self.executed: list[str] = []

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
        """Why ``name`` must be rerun; empty when its results, figures and checkpoint are fresh."""
        entry = self.registry.entry(name)
        reasons = self.registry.problems(name) or stale_reasons(entry, self.key(name))
        if not reasons and entry.get("checkpoint"):
            try:
                self.store.check(entry["checkpoint"])
            except CheckpointError as err:
                reasons = [str(err)]
        return reasons

    def run(self, selected: list[str]) -> None:
        for name in SECTIONS:
            if name in selected:
                self.bring_up_to_date(name, forced=self.opts.force)

    def bring_up_to_date(self, name: str, forced: bool = False, needed_by: str | None = None) -> None:
        if name in self._done:
            return
        reasons = self.status(name)
        if not reasons and not forced:
            self.say(name, "fresh: results reused" + ("" if needed_by else " (--force reruns it)"))
            self._done.add(name)
            return
        for upstream in section_module(name).REQUIRES:
            self.bring_up_to_date(upstream, needed_by=name)
        why = "; ".join(reasons) if reasons else "--force"
        self.splits()  # a data error surfaces before anything is announced
        if any("corrupt" in r for r in reasons):
            self.say(name, f"warning: {why}; recomputing it")
        self.say(name, f"needed by {needed_by}, running it first ({why})" if needed_by else f"running ({why})")
        self.execute(name)
        self._done.add(name)

    def artifacts(self, name: str) -> dict:
        """The artifacts of an up-to-date section, from this run or from its checkpoint."""
        if name not in self._artifacts:
            try:
                self._artifacts[name] = self.store.load(self.registry.entry(name), name, self.opts.device)
            except CheckpointError as err:
                self.say(name, f"warning: {err}; recomputing it")
                self.execute(name)
        return self._artifacts[name]

    def execute(self, name: str) -> None:
        module, cfg = section_module(name), self.config(name)
        upstream = {u: self.artifacts(u) for u in module.REQUIRES}
        ctx = Context(data=self.splits(), device=self.opts.device, seed=self.opts.seed,
                      progress=Progress(name, self.stream), require=upstream.__getitem__, smoke=self.opts.smoke)
        key = self.key(name)
        seed_everything(self.opts.seed)
        start = time.perf_counter()
        result = module.run(cfg, ctx)
        wall = time.perf_counter() - start
        with critical():
            self.commit(name, module, cfg, key, result, wall)
        self._artifacts[name] = result.artifacts
        self.executed.append(name)
        self.say(name, f"done in {wall:.1f}s")

    def commit(self, name, module, cfg, key: CacheKey, result, wall: float) -> None:
        """Encode everything first (a failure writes nothing), then write the figures, the checkpoint
        and last the registry entry that points at both; only then drop the older checkpoints. The registry
        is read again first (under the output folder's lock), so no other run's commit is lost."""
        self.registry.reload()
        source = Path(module.__file__).resolve().relative_to(ROOT).as_posix()
        files, figures = {}, {}
        for fig_name, fig in result.figures.items():
            payload, record = encode_figure(fig, f"{name}_{fig_name}")
            files[self.opts.out / "figures" / record["file"]] = payload
            figures[fig_name] = {**record, "file": f"figures/{record['file']}", "module": source}
        payload, checkpoint = self.store.encode(name, key.digest, result.artifacts) if result.artifacts else (None, None)
        provenance = self.provenance()
        entry = {
            "title": module.TITLE, "module": source, "metrics": result.metrics, "figures": figures,
            "config": jsonable_config(cfg), "seed": self.opts.seed, "smoke": self.opts.smoke,
            "wall_time_s": wall, "finished_at": provenance["time"], "cache_key": key.digest,
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
