#!/usr/bin/env python
"""--verify's false alarms, measured: does a correct rerun pass?

    python bench/verify.py --loso   (make verify-loso)  seconds, no training
    python bench/verify.py --reproduced scratch/verify-<time>/results.json   re-judge a rerun's registry, no training
    python bench/verify.py --loso --moved (or --reproduced PATH --moved)   is a 10 % change of each headline caught?
    python bench/verify.py          (make bench-verify) the report's sections rerun: about 15 minutes on a 2-core CPU
    python bench/verify.py --smoke --out report-smoke   the same at smoke sizes, kept in scratch/: checks this script

--loso: every seed of the registry's spread verified as a rerun elsewhere would be, against tolerances
made from the other seeds alone (for each held-out seed, each other seed in turn as the recorded one);
then every rounding perturbation of its jitter record (``--spread --jitter``) the same way.
Without it: ``reproduce.py --verify --only <the report's sections> --threads 2`` against the registry (its
spread sets the tolerances), timed; two threads round differently from the recorded one, like another
machine. Its wall time, numbers compared and verdict go into bench/results.json ("verify"), which the
README's time-budget table shows. --reproduced: the registry such a rerun left in scratch/ judged again
against --out's under today's rules (--record: its verdict replaces the one in bench/results.json, whose
wall time it keeps). Each exits 1 on any number outside tolerance. --moved: instead, per
section with a HEADLINE, the rerun's headline set to the recorded value moved up and down by 10 % (the
rest of the rerun kept), and verified; exits 1 unless every such change fails.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REPORT = "sup,q1,q2,q3,q3x_sparse,q3x_rowadam,q3x_long,q4,q4conv,extra_beta,extra_range,extra"  # every section of the report
THREADS = 2  # the rerun's torch threads (the registry's: 1)


def loso(out: Path) -> int:
    """Leave one seed out of the seeds' spread (the seed model alone), then one perturbation out of the jitter record."""
    from pipeline.verify import leave_one_out, numbers, print_table

    registry, failures = json.loads((out / "results.json").read_text()), 0
    for kind, label in (("spread", "seed"), ("jitter", "perturbation")):
        if not registry.get(kind):
            continue
        rows = leave_one_out(registry, kind=kind)
        failed = [r for r in rows if not r.ok]
        if failed:
            print_table(failed)
        compared = sum(len(numbers(r.recorded) or [r.recorded]) for r in rows)
        sections = len({r.metric.split(".")[0] for r in rows})
        print(f"leave one {label} out: {len(rows)} rows ({compared} numbers) in {sections} sections compared, "
              f"{len(failed)} outside tolerance")
        failures += len(failed)
    return 1 if failures else 0


def judged(out: Path, reproduced: Path, record: bool) -> int:
    """A registry that ``--verify`` left in scratch/, compared with ``out``'s as --verify would now, without training;
    with ``record``, the verdict replaces bench/results.json's ("verify": numbers compared, those outside tolerance)."""
    from pipeline.registry import Registry
    from pipeline.verify import judge

    recorded, rerun = Registry(out / "results.json").valid_data(), Registry(reproduced).valid_data()
    rows = judge(recorded, rerun, list(rerun["sections"]), f"reproduced registry: {reproduced}")
    failed = [r.metric for r in rows if not r.ok]
    target = ROOT / "bench" / "results.json"
    if record and target.is_file() and "verify" in (results := json.loads(target.read_text())):
        results["verify"].update(compared=len(rows), failed=failed, judged_again=str(reproduced))
        target.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
        print(f"wrote the verdict into {target}; python reproduce.py --render puts it in README.md")
    elif record:
        print(f"{target} holds no verify record to replace: make bench-verify writes one")
    return 1 if failed else 0


def headlines_moved(out: Path, reproduced: Path | None) -> int:
    """Each section's headline set to the recorded value +-10 % in a copy of the reproduced registry (or in every
    comparison leaving a perturbation out, or a seed where no jitter is recorded): caught when every comparison holding
    it fails; a headline of 0 cannot move."""
    from pipeline.registry import Registry
    from pipeline.verify import compare, flatten, headline_of, leave_one_out, moved, numbers

    recorded = Registry(out / "results.json").valid_data()
    verdicts: dict[str, list[bool]] = {}
    for factor in (1.1, 0.9):
        if reproduced is None:
            rows = leave_one_out(recorded, move=factor, kind="jitter" if recorded.get("jitter") else "spread")
        else:
            rerun = Registry(reproduced).valid_data()["sections"]
            rows = []
            for name, entry in rerun.items():
                flat, key = flatten(entry["metrics"]), headline_of(name)
                if name in recorded["sections"] and key in flat:
                    value = flatten(recorded["sections"][name]["metrics"])[key]
                    copy = {**entry, "metrics": {**flat, key: [*flat[key][:-1], moved(value, factor)[-1]]
                                                 if isinstance(value, list) else moved(value, factor)}}
                    rows += [r for r in compare(name, recorded["sections"][name], copy, recorded)
                             if r.metric == f"{name}.{key}"]
        for r in rows:
            if numbers(r.recorded)[-1] != 0:
                verdicts.setdefault(r.metric.split(" (")[0], []).append(not r.ok)
    for metric, fails in verdicts.items():
        print(f"{metric:50} {'caught' if all(fails) else 'NOT caught'} ({sum(fails)} of {len(fails)} comparisons fail)")
    missed = [m for m, fails in verdicts.items() if not all(fails)]
    print(f"a 10% change of each of {len(verdicts)} headlines: {len(verdicts) - len(missed)} caught"
          + (f"; not caught: {', '.join(missed)}" if missed else ""))
    return 1 if missed else 0


def rerun(out: Path, data_dir: Path, jobs: int | None, smoke: bool) -> int:
    """The report's sections with THREADS threads, verified against ``out``; the record merged into bench/results.json
    (scratch/bench-verify-smoke.json with ``smoke``)."""
    command = ["--verify", "--only", REPORT, "--threads", str(THREADS), "--out", str(out), "--data-dir", str(data_dir),
               *(["--jobs", str(jobs)] if jobs else []), *(["--smoke"] if smoke else [])]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "reproduce.py"), *command], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    print(done.stdout, end="")
    compared = re.search(r"^(\d+) numbers in ", done.stdout, re.M)
    if done.returncode not in (0, 1) or not compared:
        sys.exit(f"reproduce.py {' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    failed = [line.split()[0] for line in done.stdout.splitlines() if line.endswith(" FAIL")]
    target = ROOT / "scratch" / "bench-verify-smoke.json" if smoke else ROOT / "bench" / "results.json"
    results = json.loads(target.read_text()) if target.is_file() else {}
    results["verify"] = {"sections": REPORT, "threads": THREADS, "wall_s": wall, "compared": int(compared[1]),
                         "failed": failed, "jobs": jobs or len(os.sched_getaffinity(0))}
    target.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    print(f"verify with {THREADS} threads: {wall:.0f} s, {compared[1]} numbers, {len(failed)} outside tolerance; "
          f"wrote {target}" + ("" if smoke else "; python reproduce.py --render puts it in README.md"))
    return done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loso", action="store_true", help="leave one seed out of the recorded spread (no training)")
    parser.add_argument("--reproduced", type=Path, default=None,
                        help="a registry --verify reproduced (scratch/verify-*/results.json): judge it, no training")
    parser.add_argument("--record", action="store_true",
                        help="with --reproduced: its verdict replaces bench/results.json's (the rerun's wall time kept)")
    parser.add_argument("--moved", action="store_true", help="with --loso or --reproduced: move each headline by 10 %%")
    parser.add_argument("--out", type=Path, default=ROOT / "report", help="the registry's folder [default: report/]")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("MNIST_DATA_DIR", ROOT / "data")))
    parser.add_argument("--jobs", type=int, default=None, help="passed to reproduce.py [default: its own]")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (give a smoke registry's --out)")
    args = parser.parse_args()
    if args.moved:
        sys.exit(headlines_moved(args.out, None if args.loso else args.reproduced))
    if args.loso or args.reproduced:
        sys.exit(loso(args.out) if args.loso else judged(args.out, args.reproduced, args.record))
    sys.exit(rerun(args.out, args.data_dir, args.jobs, args.smoke))


if __name__ == "__main__":
    main()
