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

With ``--jitter N`` the runs are instead the registry's seed unperturbed and with N rounding
perturbations (``jitter.py``), recorded as ``"jitter"`` in the same form, its ``seeds`` being the
perturbations 0 to N and ``seed`` the one seed; ``--verify`` prefers it where it moves a number.
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


def record_spread(opts: Options, selected: list[str], seeds: list[int], jitter: int = 0) -> int:
    """Run ``selected`` with each seed and write the ``spread`` record into the registry of ``opts.out``; with
    ``jitter`` N instead, at ``opts.seed`` unperturbed (0) and with perturbations 1 to N, the ``jitter`` record."""
    kind, runs = ("jitter", list(range(jitter + 1))) if jitter else ("spread", seeds)
    label, base = ("perturbation", 0) if jitter else ("seed", opts.seed)  # base: the run the registry holds
    names = [n for n in SECTIONS if n in selected]
    main = Runner(opts)
    reuse = base in runs and all(main.registry.entry(n) and not main.status(n) for n in names)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (ROOT / "scratch").mkdir(exist_ok=True)
    prefix = f"{kind}-{'smoke-' if opts.smoke else ''}{stamp}-"
    scratch = Path(tempfile.mkdtemp(prefix=prefix, dir=ROOT / "scratch"))
    metrics: dict[int, dict[str, dict]] = {}
    for run in runs:
        if run == base and reuse:
            click.echo(f"{label} {run}: the registry's fresh results", err=True)
            metrics[run] = {n: main.registry.entry(n)["metrics"] for n in names}
            continue
        folder = scratch / f"{label}-{run}"
        click.echo(f"{label} {run}: computing {', '.join(names)} into {folder}", err=True)
        varied = {"jitter": run} if jitter else {"seed": run}
        runner = Runner(dataclasses.replace(opts, **varied, out=folder, checkpoints=folder / "checkpoints", force=True))
        runner.run(names)
        metrics[run] = {n: runner.registry.entry(n)["metrics"] for n in names}
    sections = {n: {"seeds": runs, "config": jsonable_config(main.config(n)),
                    "metrics": spread_of([metrics[r][n] for r in runs])} for n in names}
    old = main.registry.data.get(kind) or {}
    same = old.get("smoke") == opts.smoke and (not jitter or old.get("seed") == opts.seed)
    kept = {n: {**v, "seeds": section_seeds(old, n)} for n, v in old.get("sections", {}).items()
            if n not in sections and same}
    every = {**kept, **sections}
    lists = [tuple(v["seeds"]) for v in every.values()]
    record = {"seeds": list(max(lists, key=lists.count)), "commit": main.git["commit"], "smoke": opts.smoke,
              "env": main.env, "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "sections": every, **({"seed": opts.seed} if jitter else {})}
    main.registry.put_meta(kind, record)
    click.echo(f"recorded the spread of {sum(len(s['metrics']) for s in sections.values())} numbers over "
               f"{label}s {', '.join(map(str, runs))} in {opts.out / 'results.json'} ({kind!r})", err=True)
    return 0
