# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""``--spread``: the spread of every number across seeds, recorded in the registry for ``--verify``.

Another seed changes every random draw (splits, initialisation, batches, noise); another machine
changes only rounding, whose effect grows through training the same way. So the standard
deviation of a number across a few seeds stands in for its spread across machines, and
``--verify`` makes its cross-device tolerances from it (``pipeline/tolerance.py``).

The seed of the registry is read from it where its entries are fresh; every other seed is computed
into ``scratch/spread-<time>/seed-<n>/``. The record, ``"spread"`` at the top of the registry:
``{"seeds", "commit", "smoke", "env", "finished_at", "sections": {name: {"seeds", "config", "metrics":
{dotted key: {"values": [per seed], "sd": number or per-element list}}}}}``. Each section keeps its own
seeds (cheap ones may have more; a later ``--spread --only X`` replaces X's alone); the top-level
``seeds`` are the list most sections have, and a record written before sections had their own seeds
stands for all of them.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import statistics
import tempfile
from pathlib import Path

import click

from .cache import ROOT, jsonable_config
from .runner import Options, Runner, SECTIONS
from .verify import flatten, numbers, section_seeds


def spread_of(runs: list[dict]) -> dict[str, dict]:
    """Per numeric metric (timings left out): the values of every run and their sample SD, per element."""
    flats = [flatten(metrics) for metrics in runs]
    out = {}
    for key, first in flats[0].items():
        if key.split(".")[0] == "timing":
            continue
        values = [flat.get(key) for flat in flats]
        series = [numbers(v) for v in values]
        if any(s is None or len(s) != len(series[0]) for s in series):
            continue
        sd = [statistics.stdev(column) for column in zip(*series)]
        out[key] = {"values": values, "sd": sd if isinstance(first, list) else sd[0]}
    return out


def record_spread(opts: Options, selected: list[str], seeds: list[int]) -> int:
    """Run ``selected`` with each seed and write the ``spread`` record into the registry of ``opts.out``."""
    names = [n for n in SECTIONS if n in selected]
    main = Runner(opts)
    reuse = opts.seed in seeds and all(main.registry.entry(n) and not main.status(n) for n in names)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (ROOT / "scratch").mkdir(exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"spread-{'smoke-' if opts.smoke else ''}{stamp}-", dir=ROOT / "scratch"))
    metrics: dict[int, dict[str, dict]] = {}
    for seed in seeds:
        if seed == opts.seed and reuse:
            click.echo(f"seed {seed}: the registry's fresh results", err=True)
            metrics[seed] = {n: main.registry.entry(n)["metrics"] for n in names}
            continue
        click.echo(f"seed {seed}: computing {', '.join(names)} into {scratch / f'seed-{seed}'}", err=True)
        folder = scratch / f"seed-{seed}"
        runner = Runner(dataclasses.replace(opts, seed=seed, out=folder, checkpoints=folder / "checkpoints", force=True))
        runner.run(names)
        metrics[seed] = {n: runner.registry.entry(n)["metrics"] for n in names}
    sections = {n: {"seeds": seeds, "config": jsonable_config(main.config(n)),
                    "metrics": spread_of([metrics[s][n] for s in seeds])} for n in names}
    old = main.registry.data.get("spread") or {}
    kept = {n: {**v, "seeds": section_seeds(old, n)} for n, v in old.get("sections", {}).items()
            if n not in sections and old.get("smoke") == opts.smoke}
    every = {**kept, **sections}
    lists = [tuple(v["seeds"]) for v in every.values()]
    record = {"seeds": list(max(lists, key=lists.count)), "commit": main.git["commit"], "smoke": opts.smoke,
              "env": main.env, "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "sections": every}
    main.registry.put_meta("spread", record)
    click.echo(f"recorded the spread of {sum(len(s['metrics']) for s in sections.values())} numbers over seeds "
               f"{', '.join(map(str, seeds))} in {opts.out / 'results.json'}", err=True)
    return 0
