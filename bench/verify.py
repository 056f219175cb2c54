#!/usr/bin/env python
"""--verify's false alarms, measured: does a correct rerun pass?

    python bench/verify.py --loso   (make verify-loso)  seconds, no training
    python bench/verify.py          (make bench-verify) the report's sections rerun: about 15 minutes on a 2-core CPU
    python bench/verify.py --smoke --out report-smoke   the same at smoke sizes, kept in scratch/: checks this script

--loso: every seed of the registry's spread verified as a rerun elsewhere would be, against tolerances
made from the other seeds alone (for each held-out seed, each other seed in turn as the recorded one).
Without it: ``reproduce.py --verify --only <the report's sections> --threads 2`` against the registry (its
spread sets the tolerances), timed; two threads round differently from the recorded one, like another
machine. Its wall time, numbers compared and verdict go into bench/results.json ("verify"), which the
README's time-budget table shows. Either exits 1 on any number outside tolerance.
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
    from pipeline.verify import leave_one_seed_out, numbers, print_table

    rows = leave_one_seed_out(json.loads((out / "results.json").read_text()))
    failed = [r for r in rows if not r.ok]
    if failed:
        print_table(failed)
    compared = sum(len(numbers(r.recorded) or [r.recorded]) for r in rows)
    sections = len({r.metric.split(".")[0] for r in rows})
    print(f"leave one seed out: {len(rows)} rows ({compared} numbers) in {sections} sections compared, "
          f"{len(failed)} outside tolerance")
    return 1 if failed else 0


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
    parser.add_argument("--out", type=Path, default=ROOT / "report", help="the registry's folder [default: report/]")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("MNIST_DATA_DIR", ROOT / "data")))
    parser.add_argument("--jobs", type=int, default=None, help="passed to reproduce.py [default: its own]")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (give a smoke registry's --out)")
    args = parser.parse_args()
    sys.exit(loso(args.out) if args.loso else rerun(args.out, args.data_dir, args.jobs, args.smoke))


if __name__ == "__main__":
    main()
