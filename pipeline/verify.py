# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""``--verify``: recompute sections in a scratch folder and compare every number with the registry.

The recorded registry (``report/results.json`` by default) is only read. "Same device" means the
recorded entry's environment (device type and model, thread count, library versions) equals this
one; then deterministic kernels reproduce the numbers to the last bit, and each number must agree
within the module's ``TOLERANCES[key][0]`` or else exactly (integers) or to DEFAULT_SAME_REL.

Across devices (another CPU model, thread count or library version) rounding differs and grows
through training. Where the registry holds a ``jitter`` record (``--spread --jitter N``: the
sections rerun at the recorded seed with their rounding perturbed, ``jitter.py``) and it moved a
number, that number's tolerance comes from its SD over those reruns; otherwise, where it holds a
``spread`` record (``--spread``: the same sections run with several seeds), from its SD over seeds,
which also redraw data and noise and so bound a rerun's change from above. Either SD is pooled with its neighbours in a list or its siblings (``pipeline/tolerance.py``):
Student's t makes each tolerance hold under the SD's own uncertainty, and Bonferroni over every
number the spreads cover states the chance that a correct rerun fails anywhere (printed with the
verdict). A section's HEADLINE is capped below 10 % of its value where that costs little. An
integer (a count) also passes when it lies within the values the seeds or reruns gave. Without a spread: the
module's ``TOLERANCES[key][1]``, else integers exactly and other numbers within DEFAULT_CROSS_REL
of the recorded value.

An integer that selects something (the best epoch, the most likely digit) is listed in the
module's ``SELECTS = {key: (list_key, first_index)}`` and compared by what it selects: the value of
``list_key`` at the recorded position against the reproduced value at the reproduced position,
within that list's tolerance. A choice that selects nothing the registry holds (which image fits worst,
which pairs rank top) is listed in ``CHOICES = (key, ...)`` (a key or a prefix of keys): it must be
equal on the same device and is shown, not compared, across devices. Timings (the ``timing`` subtree) are never compared; strings and
structured values (layer lists) must be equal.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import math
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import section_module
from .cache import ROOT
from .registry import Registry
from .tolerance import FALSE_ALARM, SpreadTolerance, rule_of

if TYPE_CHECKING:
    from .runner import Options

DEFAULT_SAME_REL = 1e-6  # same device and threads: bit-identical up to float printing
DEFAULT_CROSS_REL = 0.05  # another device, no spread recorded: 5% of the recorded value
KINDS = ("jitter", "spread")  # the spreads a tolerance may come from, preferred first: same-seed reruns, then seeds


@dataclass(frozen=True)
class Row:
    metric: str
    recorded: Any
    reproduced: Any
    difference: float | None
    tolerance: float | None
    ok: bool
    rate: float | None = None  # the chance that a correct rerun fails this row, where a spread sets its tolerance
    uncapped: bool = False  # a headline number whose 10 % change lies within its spread over seeds


def flatten(metrics: dict, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> dotted keys; a list of records (dicts with the same keys) -> one list per field, so that
    their numbers get tolerances and a spread like any list; other lists and scalars are leaves."""
    flat = {}
    for key, value in metrics.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, path + "."))
        elif isinstance(value, list) and value and all(isinstance(v, dict) and v.keys() == value[0].keys() for v in value):
            flat.update(flatten({field: [v[field] for v in value] for field in value[0]}, path + "."))
        else:
            flat[path] = value
    return flat


def numbers(value: Any) -> list[float | int] | None:
    """The value as a flat list of numbers (nested lists flattened), or None when it is not numeric."""
    if isinstance(value, list):
        parts = [numbers(v) for v in value]
        return None if not parts or any(p is None for p in parts) else [x for p in parts for x in p]
    return [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def logged(record: dict) -> dict:
    """A spread record of positive numbers as their logarithms: values (nesting kept) and per-element SDs."""
    log = lambda v: [log(x) for x in v] if isinstance(v, list) else math.log(v)  # noqa: E731
    values = [log(v) for v in record["values"]]
    sds = [statistics.stdev(column) for column in zip(*(numbers(v) for v in values))]
    return {"values": values, "sd": sds if isinstance(record["sd"], list) else sds[0]}

def usable_spread(registry: dict, section: str, entry: dict, kind: str = "spread") -> dict[str, dict]:
    """The spread of the section's numbers over seeds (``kind`` "spread") or over rounding perturbations at the
    entry's seed ("jitter"), when it was measured with the entry's configuration and size (and seed)."""
    spread = registry.get(kind) or {}
    record = spread.get("sections", {}).get(section)
    if not record or spread.get("smoke") != entry.get("smoke") or record.get("config") != entry.get("config"):
        return {}
    if kind == "jitter" and spread.get("seed") != entry.get("seed"):
        return {}
    return record["metrics"]


def section_seeds(spread: dict, section: str) -> list[int]:
    """The seeds of a section's spread: its own list, or (a record from before sections had one) the record's."""
    return spread.get("sections", {}).get(section, {}).get("seeds") or spread["seeds"]


def family_size(registry: dict) -> int:
    """How many numbers the registry's spreads cover (every element of every list, over seeds and over perturbations):
    the Bonferroni family."""
    return sum(len(numbers(v["values"][0]) or []) for kind in KINDS for record in
               (registry.get(kind) or {}).get("sections", {}).values() for v in record["metrics"].values())


def moves(record: dict) -> bool:
    """Whether a spread record's number varied at all (a perturbation may leave a number untouched: no model of it)."""
    return any(numbers(record["sd"]) or [])


def served_by_reruns(key: str, noise: str | tuple | None, spread: dict, reruns: dict) -> bool:
    """Whether a number's tolerance comes from the perturbed reruns (they moved it, or its source under a "like" rule,
    or the seeds did not record it) rather than from the seeds."""
    source = noise[1] if isinstance(noise, tuple) and noise[0] == "like" else key
    return source in reruns and (moves(reruns[source]) or key not in spread)


class Rule:
    """Per-element tolerances of one metric, whether a difference passes, and the false-alarm rate they allow."""

    def __init__(self, key: str, recorded: list, same: bool, declared: dict, spread: dict, family: int = 1,
                 headline: bool = False, noise: str | tuple | None = None, reruns: dict | None = None):
        self.ints = all(isinstance(x, int) for x in recorded)
        self.seen: list[tuple[float, float]] | None = None
        self.rate: float | None = None  # under the spread's model; None where the tolerance is not from a spread
        self.uncapped = False
        if same:
            self.tols = ([declared[key][0]] * len(recorded) if key in declared
                         else [0.0 if self.ints else DEFAULT_SAME_REL * max(1.0, abs(x)) for x in recorded])
        elif key in spread or key in (reruns or {}):
            # the rerun-at-one-seed model where perturbations moved the number (or its source), else the seeds'
            model = reruns if served_by_reruns(key, noise, spread, reruns or {}) else spread
            made = SpreadTolerance.of(model, key, recorded, family, headline, noise)
            self.tols = [max(tol, DEFAULT_SAME_REL * max(1.0, abs(x))) for tol, x in zip(made.tols, recorded)]
            self.rate, self.uncapped = made.rate, made.uncapped
            if self.ints:  # the range of values the seeds and perturbations gave, per element
                runs = [numbers(v) for r in (spread, reruns or {}) if key in r for v in r[key]["values"]]
                self.seen = [(min(col), max(col)) for col in zip(*runs)]
        elif key in declared:
            self.tols = [declared[key][1]] * len(recorded)
        else:
            self.tols = [0.0 if self.ints else DEFAULT_CROSS_REL * max(1.0, abs(x)) for x in recorded]

    def ok(self, i: int, reproduced: float, difference: float) -> bool:
        within_seen = self.seen is not None and self.seen[i][0] <= reproduced <= self.seen[i][1]
        return math.isfinite(difference) and (difference <= self.tols[i] or within_seen)


def compare(section: str, recorded: dict, reproduced: dict, registry: dict | None = None) -> list[Row]:
    """One row per recorded metric of a section; ``registry`` (the recorded one) may hold a spread."""
    module = section_module(section)
    declared, selects = getattr(module, "TOLERANCES", {}), getattr(module, "SELECTS", {})
    choices = getattr(module, "CHOICES", ())
    spread = usable_spread(registry or {}, section, recorded)
    reruns = usable_spread(registry or {}, section, recorded, "jitter")
    family, headline = family_size(registry or {}), headline_of(section)
    same = recorded.get("env") == reproduced.get("env")
    old_flat, new_flat = flatten(recorded["metrics"]), flatten(reproduced["metrics"])
    rows = []
    for key, old in old_flat.items():
        if key.split(".")[0] == "timing":
            continue
        new = new_flat.get(key)
        label = f"{section}.{key}"
        noise = rule_of(section, key)
        if any(key == c or key.startswith(c + ".") for c in choices) or noise == "shown":
            # which items an argmax or a ranking picked (how many, too), or an outcome that jumps (a threshold's count,
            # a restart that converges or not): another machine's rounding may land on the other side
            rows.append(Row(f"{label} (a choice)", old, new, None, None, not same or old == new))
            continue
        a, b = numbers(old), numbers(new)
        if a is None or b is None or len(a) != len(b):
            rows.append(Row(label, old, new, None, None, old == new))
            continue
        if key in selects and len(a) == 1 and old != new:
            rows.append(selected(label, selects[key], a[0], b[0], old_flat, new_flat, same, declared, spread, family,
                                 reruns))
            continue
        spread_here, reruns_here = spread, reruns
        if noise == "log" and not same and (key in spread or key in reruns) and min(a + b) > 0:
            # positive and heavy-tailed: its logarithm, and the spread of the logarithm
            log = lambda r: {**r, key: logged(r[key])} if key in r else r  # noqa: E731
            a, b, spread_here, reruns_here, label = ([math.log(x) for x in a], [math.log(x) for x in b],
                                                     log(spread), log(reruns), f"{label} (log)")
        rule = Rule(key, a, same, declared, spread_here, family, key == headline, noise, reruns_here)
        diffs = [abs(x - y) for x, y in zip(a, b)]
        worst = max(range(len(a)), key=lambda i: diffs[i] - rule.tols[i])
        ok = all(rule.ok(i, b[i], diffs[i]) for i in range(len(a)))
        rows.append(Row(label, old, new, diffs[worst], rule.tols[worst], ok, rule.rate, rule.uncapped))
    return rows


def selected(label: str, select: tuple[str, int], old: int, new: int, old_flat: dict, new_flat: dict,
             same: bool, declared: dict, spread: dict, family: int, reruns: dict) -> Row:
    """A selecting integer that differs: compare the values it selects, recorded and reproduced."""
    key, first = select
    values_old, values_new = numbers(old_flat.get(key)), numbers(new_flat.get(key))
    i, j = old - first, new - first
    if not values_old or not values_new or not (0 <= i < len(values_old) and 0 <= j < len(values_new)):
        return Row(label, old, new, None, None, False)
    rule = Rule(key, values_old, same, declared, spread, family, reruns=reruns)
    difference = abs(values_old[i] - values_new[j])
    return Row(f"{label} (by {key})", old, new, difference, rule.tols[i], rule.ok(i, values_new[j], difference),
               None if rule.rate is None else FALSE_ALARM / family)


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


def basis(rows: list[Row], same: bool, registry: dict) -> str:
    """What the tolerances of ``rows`` rest on, in words: the chance of a false alarm they allow, and the headline
    numbers a 10 % change of which they would not catch."""
    spread = registry.get("spread")
    if same:
        return "bit for bit up to the same-device tolerances"
    if not spread:
        return "within the cross-device defaults (no spread recorded: make spread)"
    rate = sum(r.rate for r in rows if r.rate is not None)
    blind = [r.metric for r in rows if r.uncapped]
    own = {name: seeds for name in {r.metric.split(".")[0] for r in rows}
           if (seeds := section_seeds(spread, name)) != spread["seeds"]}
    jitter = registry.get("jitter")
    counts = sorted({len(section_seeds(jitter, name)) - 1 for name in {r.metric.split(".")[0] for r in rows}
                     if name in jitter.get("sections", {})}) if jitter else []
    many = " to ".join(map(str, dict.fromkeys([counts[0], counts[-1]]))) if counts else ""
    reruns = (f"tolerances from {many} reruns at seed {jitter['seed']} "
              "with their rounding perturbed where those moved a number, else " if counts else "tolerances ")
    return (f"{reruns}from the spread over seeds {', '.join(map(str, spread['seeds']))}" +
            (" (" + "; ".join(f"{name}: {', '.join(map(str, seeds))}" for name, seeds in sorted(own.items())) + ")"
             if own else "") + " where recorded: a correct "
            f"rerun fails any of its numbers here with chance at most {rate:.1%}, if this machine moves them no more than "
            f"{'such a rerun (or another seed) does' if jitter else 'another seed does'}" +
            (f"; a 10% change of {', '.join(blind)} lies within that spread" if blind else ""))


def verify(opts: Options, selected: list[str]) -> int:
    """Recompute ``selected`` (and what they need) into scratch/verify-<time>/ and compare."""
    from .runner import Runner  # imports torch, which the README's rendering does not need

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
    rows = judge(reference.valid_data(), runner.registry.valid_data(), runner.executed,
                 f"in {time.perf_counter() - start:.0f}s; reproduced registry: {scratch / 'results.json'}")
    return 1 if any(not r.ok for r in rows) else 0


def judge(recorded: dict, reproduced: dict, names: list[str], note: str = "") -> list[Row]:
    """Compare the sections ``names`` of a reproduced registry with the recorded one: the table, the verdict and what
    its tolerances rest on, and the rows. ``bench/verify.py --reproduced`` re-judges a registry that ``--verify`` left
    in scratch/ this way, without training."""
    names = [n for n in names if n in recorded.get("sections", {}) and n in reproduced.get("sections", {})]
    rows = [row for name in names
            for row in compare(name, recorded["sections"][name], reproduced["sections"][name], recorded)]
    print_table(rows)
    failed = [r for r in rows if not r.ok]
    same = all(recorded["sections"][n].get("env") == reproduced["sections"][n].get("env") for n in names)
    click.echo(f"\n{len(rows)} numbers in {', '.join(names)} compared on "
               f"{'the same' if same else 'a different'} device/environment as recorded ({basis(rows, same, recorded)})"
               + (f", {note}" if note else ""))
    click.echo(f"{len(failed)} outside tolerance" if failed else "all within tolerance")
    return rows


def headline_of(section: str) -> str | None:
    """The key of the section's HEADLINE number, or None."""
    return getattr(section_module(section), "HEADLINE", (None,))[0]


def moved(value: Any, factor: float) -> Any:
    """A headline value changed by ``factor`` (1.1: up 10 %): a scalar, or the last element of a list."""
    return [*value[:-1], value[-1] * factor] if isinstance(value, list) else value * factor


def leave_one_out(registry: dict, move: float | None = None, kind: str = "spread") -> list[Row]:
    """Every run of a recorded spread checked as a rerun elsewhere would be: for each held-out run and each other run as
    the recorded one, the held-out run's numbers against tolerances made from the other runs alone. ``kind`` "spread":
    seeds, under the seed model alone (the jitter record set aside), on the numbers it serves (those the perturbed
    reruns leave unmoved, where the registry has them); "jitter": the rounding perturbations at one seed,
    the seeds' spread kept for what they leave unmoved. With ``move``, the headline's row alone, the rerun's headline
    being the recorded one times ``move``."""
    from .spread import spread_of  # imports torch

    spread, rows = registry[kind], []
    label = "seed" if kind == "spread" else "perturbation"
    base = {k: v for k, v in registry.items() if k != "jitter"} if kind == "spread" else registry
    elsewhere = {"device": f"another {label}"}
    for section, record in spread["sections"].items():
        entry = registry.get("sections", {}).get(section)
        recorded_now = set(flatten(entry["metrics"])) if entry else set(record["metrics"])  # what verify would compare
        headline, seeds = headline_of(section), section_seeds(spread, section)
        if move is not None and headline not in recorded_now & set(record["metrics"]):
            continue
        reruns = usable_spread(registry, section, entry, "jitter") if kind == "spread" and entry else {}
        # the seed model is tested on the numbers it serves, the reruns' on theirs
        tested = {key for key in recorded_now if not served_by_reruns(key, rule_of(section, key), record["metrics"], reruns)}
        runs = [{key: v["values"][i] for key, v in record["metrics"].items() if key in recorded_now}
                for i in range(len(seeds))]
        for out, held in enumerate(seeds):
            kept = [i for i in range(len(runs)) if i != out]
            others = {**base, kind: {**spread, "sections": {**spread["sections"], section: {
                **record, "seeds": [seeds[i] for i in kept], "metrics": spread_of([runs[i] for i in kept])}}}}
            for i in kept:
                recorded = {"env": {}, "smoke": spread["smoke"], "config": record["config"], "metrics": runs[i],
                            "seed": spread.get("seed")}
                rerun = {"env": elsewhere, "metrics": runs[out] if move is None else
                         {**runs[out], headline: moved(runs[i][headline], move)}}
                rows += [dataclasses.replace(row, metric=f"{row.metric} ({label} {held} vs {seeds[i]})")
                         for row in compare(section, recorded, rerun, others)
                         if (move is None or row.metric == f"{section}.{headline}")
                         and row.metric.split(" (")[0].removeprefix(f"{section}.") in tested]
    return rows
