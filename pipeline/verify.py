"""``--verify``: recompute sections in a scratch folder and compare every number with the registry.

The recorded registry (``report/results.json`` by default) is only read. Each number is compared
within a tolerance: the section module's ``TOLERANCES[key] = (same_device_abs, cross_device_abs)``
where it declares one; otherwise integers (counts, image indices) must be equal and other numbers
agree within the defaults below, relative to each recorded value (per element for per-epoch
lists). "Same device" means the recorded entry's environment (device type and model, thread
count, library versions) equals this one; then deterministic kernels reproduce the numbers to the
last bit. Timings (the ``timing`` subtree) are never compared. Strings and structured values
(layer lists) must be equal.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from .cache import ROOT
from .registry import Registry
from .runner import Options, Runner, section_module

DEFAULT_SAME_REL = 1e-6  # same device and threads: bit-identical up to float printing
DEFAULT_CROSS_REL = 0.05  # another device or library version: 5% of the recorded value


@dataclass(frozen=True)
class Row:
    metric: str
    recorded: Any
    reproduced: Any
    difference: float | None
    tolerance: float | None
    ok: bool


def flatten(metrics: dict, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> dotted keys; lists and scalars are leaves."""
    flat = {}
    for key, value in metrics.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def numbers(value: Any) -> list[float | int] | None:
    """The value as a flat list of numbers (nested lists flattened), or None when it is not numeric."""
    if isinstance(value, list):
        parts = [numbers(v) for v in value]
        return None if not parts or any(p is None for p in parts) else [x for p in parts for x in p]
    return [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def compare(section: str, recorded: dict, reproduced: dict) -> list[Row]:
    """One row per recorded metric of a section."""
    tolerances = getattr(section_module(section), "TOLERANCES", {})
    same = recorded.get("env") == reproduced.get("env")
    old_flat, new_flat = flatten(recorded["metrics"]), flatten(reproduced["metrics"])
    rows = []
    for key, old in old_flat.items():
        if key.split(".")[0] == "timing":
            continue
        new = new_flat.get(key)
        label = f"{section}.{key}"
        a, b = numbers(old), numbers(new)
        if a is None or b is None or len(a) != len(b):
            rows.append(Row(label, old, new, None, None, old == new))
            continue
        diffs = [abs(x - y) for x, y in zip(a, b)]
        if key in tolerances:
            tols = [tolerances[key][0 if same else 1]] * len(a)
        elif all(isinstance(x, int) for x in a):
            tols = [0.0] * len(a)
        else:
            tols = [(DEFAULT_SAME_REL if same else DEFAULT_CROSS_REL) * max(1.0, abs(x)) for x in a]
        worst = max(range(len(a)), key=lambda i: diffs[i] - tols[i])
        ok = all(math.isfinite(d) and d <= t for d, t in zip(diffs, tols))
        rows.append(Row(label, old, new, diffs[worst], tols[worst], ok))
    return rows


def show(value: Any) -> str:
    vals = numbers(value)
    if vals is None:
        text = str(value)
        return text if len(text) <= 18 else text[:15] + "..."
    last = vals[-1]
    return (f"{last:.6g}" if len(vals) == 1 else f"{last:.6g} ({len(vals)})")


def print_table(rows: list[Row]) -> None:
    click.echo(f"{'metric':42} {'recorded':>16} {'reproduced':>16} {'difference':>11} {'tolerance':>10}  verdict")
    for r in rows:
        diff = "-" if r.difference is None else f"{r.difference:.3g}"
        tol = "equal" if r.tolerance is None else f"{r.tolerance:.3g}"
        click.echo(f"{r.metric:42} {show(r.recorded):>16} {show(r.reproduced):>16} {diff:>11} {tol:>10}  "
                   f"{'ok' if r.ok else 'FAIL'}")


def verify(opts: Options, selected: list[str]) -> int:
    """Recompute ``selected`` (and what they need) into scratch/verify-<time>/ and compare."""
    reference = Registry(opts.out / "results.json")
    missing = [name for name in selected if reference.entry(name) is None]
    if missing:
        raise click.ClickException(f"{opts.out / 'results.json'} has no results for {', '.join(missing)}: nothing to "
                                   f"verify against; produce them first with --only {','.join(missing)}")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (ROOT / "scratch").mkdir(exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"verify-{'smoke-' if opts.smoke else ''}{stamp}-", dir=ROOT / "scratch"))
    start = time.perf_counter()
    runner = Runner(dataclasses.replace(opts, out=scratch, checkpoints=scratch / "checkpoints", force=True))
    runner.run(selected)
    rows = [row for name in runner.executed if reference.entry(name)
            for row in compare(name, reference.entry(name), runner.registry.entry(name))]
    print_table(rows)
    failed = [r for r in rows if not r.ok]
    same = all(reference.entry(n).get("env") == runner.registry.entry(n).get("env") for n in runner.executed)
    click.echo(f"\n{len(rows)} numbers in {', '.join(runner.executed)} compared on "
               f"{'the same' if same else 'a different'} device/environment as recorded, in "
               f"{time.perf_counter() - start:.0f}s; reproduced registry: {scratch / 'results.json'}")
    click.echo(f"{len(failed)} outside tolerance" if failed else "all within tolerance")
    return 1 if failed else 0
