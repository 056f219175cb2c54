#!/usr/bin/env python
"""The time budgets, measured: one command, on the machine it runs on.

    python bench/run.py            (make bench)  about 20 minutes on a 2-core CPU
    python bench/run.py --smoke    tiny sizes: checks this script in a couple of minutes

Times, each cold (fresh output and checkpoint folders under scratch/bench-<time>/):
  brief   python reproduce.py --only sup,q1,q2,q3,q4   goal <= 5 minutes
  all     python reproduce.py --all                     goal <= 15 minutes
  render  python reproduce.py --render (on all's folder) goal <= 10 seconds (median of three)
and, beside them, two epochs of Q1's training through the package (one float tensor in memory, made
once from the uint8 images and indexed per batch) and through a straightforward torchvision
``DataLoader`` with a per-image ``ToTensor``, same model, optimiser, batch size and one thread: the
package should be at least twice as fast. Each path is timed again making its batches alone, which
splits the time into data and model, and bounds the ratio any data path can reach.
Where the time goes: each section's wall time in the cold ``--all`` run, with its own timings.
The real run writes bench/results.json, which the README renders; --smoke writes into its scratch folder.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BUDGETS_S = {"brief": 300.0, "all": 900.0, "render": 10.0}  # the goals of issue 10
BRIEF = "sup,q1,q2,q3,q4"
RENDERS = 3  # --render is timed this many times; the table shows the median


def timed(args: list[str], log: Path) -> float:
    """Wall time of ``reproduce.py args``, its output in ``log``; a failure stops the benchmark."""
    start = time.perf_counter()
    with open(log, "w") as out:
        code = subprocess.run([sys.executable, str(ROOT / "reproduce.py"), *args], stdout=out, stderr=subprocess.STDOUT,
                              cwd=ROOT).returncode
    if code != 0:
        sys.exit(f"reproduce.py {' '.join(args)} failed ({code}); see {log}")
    return time.perf_counter() - start


def q1_epochs_package(splits, cfg, epochs: int, device, train: bool = True) -> float:
    """Seconds for ``epochs`` of Q1's training as the package does it: one float tensor in memory, indexed per
    batch; without ``train``, only the batches are made (the data path's share)."""
    import torch

    from experiments.lib import vae
    from experiments.lib.data import batches, to_float

    enc, dec = vae.build(**vae.arch(cfg), device=device)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=cfg.lr)
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    x = to_float(splits.train.x, *cfg.pixel_range).to(device)
    for _ in range(epochs):
        if train:
            vae.train_epoch(lambda idx, xb: enc(xb), dec, [opt], x, cfg.batch_size, cfg.kl_weight, generator,
                            lambda i, n, loss: None)
        else:
            for idx in batches(len(x), cfg.batch_size, generator):
                x[idx.to(device)]
    return time.perf_counter() - start


def q1_epochs_dataloader(data_dir: Path, splits, cfg, epochs: int, device, train: bool = True) -> float:
    """The same through torchvision's MNIST dataset, a per-image ToTensor and a DataLoader (batches only
    without ``train``)."""
    import torch
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    from experiments.lib import vae
    from experiments.lib.prob import brief_loss, reparameterize

    lo, hi = cfg.pixel_range
    to_range = transforms.Compose([transforms.ToTensor(), transforms.Lambda(lambda t: t * (hi - lo) + lo)])
    dataset = Subset(datasets.MNIST(str(data_dir), train=True, transform=to_range), splits.train.index.tolist())
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))
    enc, dec = vae.build(**vae.arch(cfg), device=device)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=cfg.lr)
    start = time.perf_counter()
    for _ in range(epochs):
        enc.train(), dec.train()
        for xb, _ in loader:
            xb = xb.to(device)
            if not train:
                continue
            mean, logvar = enc(xb)
            x_mean = dec(reparameterize(mean, logvar))
            mse, kl = brief_loss(xb.flatten(1), x_mean.flatten(1), mean, logvar)
            opt.zero_grad(set_to_none=True)
            (mse + cfg.kl_weight * kl).backward()
            opt.step()
    return time.perf_counter() - start


def dataloader_comparison(data_dir: Path, smoke: bool, epochs: int = 2) -> dict:
    """Both paths, training and batches alone. The model's steps are the same work on both, so with c = package
    minus its batches, no data path can make the package more than dataloader / c times as fast (``ceiling``)."""
    import torch

    from experiments.lib import data as mnist
    from experiments.brief import q1_vae
    from experiments.lib.runtime import configure_determinism

    configure_determinism(1)
    splits = mnist.load_splits(data_dir, 0, mnist.SMOKE_SPLIT if smoke else mnist.SplitSpec())
    cfg = q1_vae.SMOKE if smoke else q1_vae.Config()
    device = torch.device("cpu")
    ours = q1_epochs_package(splits, cfg, epochs, device)
    theirs = q1_epochs_dataloader(data_dir, splits, cfg, epochs, device)
    ours_data = q1_epochs_package(splits, cfg, epochs, device, train=False)
    theirs_data = q1_epochs_dataloader(data_dir, splits, cfg, epochs, device, train=False)
    return {"epochs": epochs, "images": len(splits.train), "package_s": ours, "dataloader_s": theirs,
            "speedup": theirs / ours, "package_data_s": ours_data, "dataloader_data_s": theirs_data,
            "data_speedup": theirs_data / ours_data, "ceiling": theirs / (ours - ours_data)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, results kept in the scratch folder")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("MNIST_DATA_DIR", ROOT / "data")))
    parser.add_argument("--jobs", type=int, default=None, help="passed to reproduce.py [default: its own]")
    args = parser.parse_args()

    from pipeline.runner import SECTIONS, device_name, git_state
    import torch

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    scratch = ROOT / "scratch" / f"bench-{'smoke-' if args.smoke else ''}{stamp}"
    scratch.mkdir(parents=True)
    common = ["--data-dir", str(args.data_dir), *(["--smoke"] if args.smoke else []),
              *(["--jobs", str(args.jobs)] if args.jobs else [])]
    runs = {"brief": ["--only", BRIEF], "all": ["--all"]}
    wall = {}
    for name, what in runs.items():
        print(f"bench: cold {' '.join(what)} ...", file=sys.stderr, flush=True)
        out = scratch / name
        wall[name] = timed([*what, "--out", str(out), "--checkpoints", str(scratch / f"{name}-ckpt"), *common],
                           scratch / f"{name}.log")
    print(f"bench: --render, {RENDERS} times ...", file=sys.stderr, flush=True)
    renders = [timed(["--render", "--out", str(scratch / "all")], scratch / "render.log") for _ in range(RENDERS)]  # no --data-dir: --render refuses it
    wall["render"] = statistics.median(renders)
    print("bench: Q1 training, package vs DataLoader ...", file=sys.stderr, flush=True)
    loader = dataloader_comparison(args.data_dir, args.smoke)
    sections = json.loads((scratch / "all" / "results.json").read_text())["sections"]
    results = {
        "machine": device_name(torch.device("cpu")), "cores": len(os.sched_getaffinity(0)), "smoke": args.smoke,
        "commit": git_state()["commit"], "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "jobs": args.jobs or len(os.sched_getaffinity(0)), "threads": next(iter(sections.values()))["env"]["threads"],
        "wall_s": wall, "render_s": renders, "budget_s": BUDGETS_S, "within_budget": {k: wall[k] <= BUDGETS_S[k] for k in BUDGETS_S},
        "sections": [{"section": name, "wall_s": sections[name]["wall_time_s"],
                      "timing": sections[name]["metrics"].get("timing", {})} for name in SECTIONS if name in sections],
        "dataloader": loader,
    }
    target = scratch / "results.json" if args.smoke else ROOT / "bench" / "results.json"
    if target.is_file() and "verify" in (previous := json.loads(target.read_text())):
        results["verify"] = previous["verify"]  # bench/verify.py's record (make bench-verify) is its own measurement
    target.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    for name, seconds in wall.items():
        print(f"{name:8} {seconds:8.1f} s  (goal {BUDGETS_S[name]:g} s){'' if seconds <= BUDGETS_S[name] else '  MISSED'}")
    print(f"Q1, {loader['epochs']} epochs: package {loader['package_s']:.1f} s, DataLoader {loader['dataloader_s']:.1f} s "
          f"({loader['speedup']:.2f}x; batches alone {loader['package_data_s']:.2f} s vs {loader['dataloader_data_s']:.2f} s, "
          f"{loader['data_speedup']:.0f}x; at most {loader['ceiling']:.2f}x with a free data path)")
    print(f"wrote {target}" + ("" if args.smoke else "; python reproduce.py --render puts it in README.md"))


if __name__ == "__main__":
    main()
