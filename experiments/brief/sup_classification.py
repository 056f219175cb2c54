# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""Section 2 of the brief: a supervised CNN classifier for MNIST, the course's skeleton filled in.

Question: train a CNN (``Conv2d``, ``Linear``, ``MaxPool2d``, ``ReLU``) on the 20,000-image subset;
after every epoch compute the average validation loss and accuracy and plot both; reach at least
97% test accuracy (our own bar: 99%).

Method: two conv-ReLU-maxpool blocks and a two-layer classifier head, cross-entropy (Eq. 1), Adam
under a one-cycle learning-rate schedule, and small random rotations, scalings and translations
of the training images as augmentation. Images are scaled to [-1, 1] like the course's skeleton.

The lines a student writes lie between ``# --- filled in: <what> ---`` and ``# --- end filled in ---``;
the rest is the scaffolding around them: the data (the 2,000-per-digit subsample, which every VAE
section reuses, as the brief's section 3.3 asks), the command line, and ``run``, through which the
report's pipeline calls this same code. The file imports only torch, torchvision, matplotlib and
the standard library, and runs on its own:

    python experiments/brief/sup_classification.py --data-dir DIR [--out DIR] [--smoke]

trains, writes the two plots (validation loss, validation accuracy; two panels of ``sup_curves.png``)
and every per-epoch number (``sup_metrics.json``), and prints the test accuracy. The report's
pipeline runs it as section ``sup``: ``python reproduce.py --only sup``; both give the same numbers.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from matplotlib import rcParams
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter
from torch import nn

SECTION = "sup"
TITLE = "Supervised classification (section 2)"
REQUIRES: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    channels: tuple[int, int] = (16, 32)  # feature maps of the two conv blocks
    hidden: int = 128  # units of the fully connected hidden layer
    dropout: float = 0.25  # dropout before the output layer (training only)
    epochs: int = 15  # passes over the 20,000 training images
    batch_size: int = 64  # images per Adam step
    max_lr: float = 3e-3  # peak learning rate of the one-cycle schedule
    rotate_deg: float = 10.0  # augmentation: random rotation of each training image, up to this many degrees
    scale: float = 0.1  # augmentation: random scaling by a factor in [1 - scale, 1 + scale]
    shift_px: float = 2.0  # augmentation: random translation, up to this many pixels along each axis
    eval_batch: int = 1000  # images per forward pass when evaluating


SMOKE = Config(epochs=2, batch_size=64)

HEADLINE = ("test_acc", "test accuracy")
# (same device, across devices), absolute.
TOLERANCES = {"test_acc": (0.0, 0.003), "val_acc": (0.0, 0.003), "test_loss": (1e-6, 0.01)}
# an integer that selects: compared by the validation loss at the epoch it names (1-based), see pipeline/verify.py
SELECTS = {"best_val_loss_epoch": ("val_loss", 1)}

# ---------------------------------------------------------------- the data (scaffolding)
PER_CLASS, N_VAL = 2000, 10000  # training images of each digit (brief, section 2.3), validation images
SMOKE_SIZES = (50, 500, 500)  # --smoke: per digit, validation, test (the pipeline's smoke split, experiments/lib/data.py)
BAR = 0.97  # the brief's test-accuracy requirement (section 2.3.1), drawn in the accuracy plot


def draw_splits(train_labels: torch.Tensor, n_test_file: int, seed: int, per_class: int = PER_CLASS, n_val: int = N_VAL,
                n_test: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Positions of the training subset (``per_class`` images of each digit), the validation set (``n_val``
    further training-file images, disjoint from it) and the test images (all, or ``n_test`` at random), fixed
    by ``seed``; ValueError when the training file is too small. Every section draws its splits here."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(train_labels), generator=g)
    chosen = torch.cat([perm[train_labels[perm] == c][:per_class] for c in range(10)])
    for c in range(10):
        if int((train_labels[chosen] == c).sum()) != per_class:
            raise ValueError(f"the training file has fewer than {per_class} images of digit {c}")
    chosen = chosen.sort().values
    rest = torch.ones(len(train_labels), dtype=torch.bool)
    rest[chosen] = False
    remaining = perm[rest[perm]]  # the training file's other images, in the same random order
    if len(remaining) < n_val:
        raise ValueError(f"the training file has {len(remaining)} images left for validation, {n_val} needed")
    val = remaining[:n_val].sort().values
    test = torch.arange(n_test_file) if n_test is None else torch.randperm(n_test_file, generator=g)[:n_test].sort().values
    return chosen, val, test


def load_mnist(root: Path, seed: int, smoke: bool) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """split name -> (uint8 images (N, 28, 28), labels (N,)) from torchvision's MNIST under ``root`` (downloaded if absent)."""
    from torchvision.datasets import MNIST

    (train_x, train_y), (test_x, test_y) = ((d.data, d.targets) for d in (MNIST(str(root), train=t, download=True)
                                                                          for t in (True, False)))
    per_class, n_val, n_test = SMOKE_SIZES if smoke else (PER_CLASS, N_VAL, None)
    train, val, test = draw_splits(train_y, len(test_y), seed, per_class, n_val, n_test)
    return {"train": (train_x[train].contiguous(), train_y[train].long()),
            "val": (train_x[val].contiguous(), train_y[val].long()),
            "test": (test_x[test].contiguous(), test_y[test].long())}


def scaled(x: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28) in [-1, 1]."""
    return (x.float().unsqueeze(1) / 255.0) * 2.0 - 1.0


# --- filled in: the network ---
def build_cnn(channels: tuple[int, int], hidden: int, dropout: float) -> nn.Sequential:
    """Conv-ReLU-pool twice, then Linear-ReLU-Dropout-Linear: (B, 1, 28, 28) -> (B, 10) logits."""
    c1, c2 = channels
    return nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, c1, 14, 14)
        nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, c2, 7, 7)
        nn.Flatten(),
        nn.Linear(c2 * 7 * 7, hidden), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(hidden, 10),
    )
# --- end filled in ---


# --- filled in: augmentation, one training epoch, evaluation on a whole split ---
def random_affine(x: torch.Tensor, cfg: Config, generator: torch.Generator) -> torch.Tensor:
    """Rotate, scale and translate each image of (B, 1, 28, 28) in [-1, 1] at random (bilinear; background -1)."""
    u = (torch.rand(4, x.shape[0], generator=generator) * 2 - 1).to(x.device)  # uniform in [-1, 1]
    angle, scale = u[0] * math.radians(cfg.rotate_deg), 1 + u[1] * cfg.scale
    # affine_grid maps each output pixel to input coordinates in units where the image spans [-1, 1]
    shift = u[2:] * cfg.shift_px * 2 / x.shape[-1]
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[0]], 1), torch.stack([sin, cos, shift[1]], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, align_corners=False) - 1  # zero padding of x + 1 is background -1


def train_epoch(net, opt, sched, x, y, cfg: Config, generator: torch.Generator, progress, epoch: int) -> float:
    """One pass of shuffled mini-batches; returns the average training loss."""
    net.train()
    order = torch.randperm(len(y), generator=generator).split(cfg.batch_size)
    total = 0.0
    for i, idx in enumerate(order, 1):
        idx = idx.to(x.device)
        xb = random_affine(x[idx], cfg, generator)
        loss = F.cross_entropy(net(xb), y[idx])  # Eq. 1 with one-hot p(y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total += loss.item() * len(idx)
        progress.update(epoch, cfg.epochs, i, len(order), loss.item())
    return total / len(y)


@torch.no_grad()
def evaluate(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> tuple[float, float]:
    """Average cross-entropy and accuracy over a whole split."""
    net.eval()
    logits = torch.cat([net(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])  # (N, 10)
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()
# --- end filled in ---


def train(cfg: Config, data: dict, device: torch.device, seed: int, progress) -> tuple[nn.Sequential, dict, Figure]:
    """Train on ``data["train"]``, validating after every epoch, then test once: the network, every number
    (``metrics``) and the two plots. torch's global generator must be seeded with ``seed`` just before
    (the weights' initialisation and dropout draw from it; batches and augmentation from their own)."""
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = ((scaled(x).to(device), y.to(device))
                                                for x, y in (data[name] for name in ("train", "val", "test")))
    # --- filled in: the training loop, the per-epoch validation loss and accuracy, the test accuracy ---
    net = build_cnn(cfg.channels, cfg.hidden, cfg.dropout).to(device, memory_format=torch.channels_last)  # faster CPU convolutions
    opt = torch.optim.Adam(net.parameters(), lr=cfg.max_lr)
    steps = cfg.epochs * math.ceil(len(y_tr) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.max_lr, total_steps=steps)
    generator = torch.Generator().manual_seed(seed)
    hist = {"train_loss": [], "val_loss": [], "val_acc": []}
    epoch_s = []
    for epoch in range(1, cfg.epochs + 1):
        start = time.perf_counter()
        hist["train_loss"].append(train_epoch(net, opt, sched, x_tr, y_tr, cfg, generator, progress, epoch))
        val_loss, val_acc = evaluate(net, x_va, y_va, cfg.eval_batch)
        hist["val_loss"].append(val_loss)
        hist["val_acc"].append(val_acc)
        epoch_s.append(time.perf_counter() - start)
        progress.note(f"epoch {epoch}/{cfg.epochs}: train loss {hist['train_loss'][-1]:.4f}, "
                      f"val loss {val_loss:.4f}, val acc {val_acc:.4f} ({epoch_s[-1]:.1f}s)")
    test_loss, test_acc = evaluate(net, x_te, y_te, cfg.eval_batch)
    # --- end filled in ---
    best = min(range(cfg.epochs), key=hist["val_loss"].__getitem__)
    metrics = {
        **hist, "test_loss": test_loss, "test_acc": test_acc,
        "best_val_loss_epoch": best + 1,
        "layers": describe(net), "params": sum(p.numel() for p in net.parameters()),
        "steps": steps, "timing": {"epoch_s": epoch_s},
    }
    return net, metrics, curves_figure(hist)


# --- filled in: the two plots ---
def curves_figure(hist: dict) -> Figure:
    """Two panels: (a) the average validation loss (the running training loss alongside), log scale;
    (b) the validation accuracy, with the brief's 97% bar."""
    fig = Figure(figsize=(0.6 * 180 / 25.4, 1.6), layout="constrained")  # 60% of the report's 180 mm text width
    ax_loss, ax_acc = fig.subplots(1, 2)
    panels = ((ax_loss, {"validation": hist["val_loss"], "training (running)": hist["train_loss"]}, "cross-entropy (nats)"),
              (ax_acc, {"validation": [100 * a for a in hist["val_acc"]]}, "accuracy (%)"))
    for ax, series, ylabel in panels:
        for (label, values), marker, style in zip(series.items(), "os", ("-", "--")):
            ax.plot(range(1, len(values) + 1), values, marker=marker, linestyle=style, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, linewidth=0.5)
    ax_loss.set_yscale("log")
    ax_loss.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax_loss.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax_loss.yaxis.set_minor_formatter(NullFormatter())
    ax_acc.axhline(100 * BAR, color="0.35", linestyle=":", linewidth=1.0, label=f"the brief's bar ({100 * BAR:g}%)")
    ax_loss.legend(frameon=False, loc="upper right", handlelength=1.6)
    ax_acc.legend(frameon=False, loc="lower right", handlelength=1.6)
    ax_loss.set_title("(a) average loss, log scale")
    ax_acc.set_title("(b) validation accuracy")
    return fig
# --- end filled in ---


def describe(net: nn.Sequential) -> list[dict]:
    """One row per layer (the supplement's table): its type, its sizes in short, output shape for one image, parameter count."""
    def sizes(layer: nn.Module) -> str:
        if isinstance(layer, nn.Conv2d):
            return f"{layer.in_channels}\u2192{layer.out_channels}, {layer.kernel_size[0]}\u00d7{layer.kernel_size[1]}"
        if isinstance(layer, nn.Linear):
            return f"{layer.in_features}\u2192{layer.out_features}"
        if isinstance(layer, nn.MaxPool2d):
            return f"{layer.kernel_size}\u00d7{layer.kernel_size}"
        return f"p = {layer.p}" if isinstance(layer, nn.Dropout) else ""

    rows, x = [], torch.zeros(1, 1, 28, 28, device=next(net.parameters()).device)
    with torch.no_grad():
        for layer in net:
            x = layer(x)
            rows.append({"layer": type(layer).__name__, "sizes": sizes(layer), "shape": list(x.shape[1:]),
                         "params": sum(p.numel() for p in layer.parameters())})
    return rows


def run(cfg: Config, ctx) -> SimpleNamespace:
    """The report's pipeline (reproduce.py --only sup) calls this with its Context (experiments/lib/contract.py):
    the splits, device, seed (torch already seeded with it) and progress line; it reads back what
    experiments.lib.contract.Result holds: metrics, figures, artifacts (the CNN, which later sections load)."""
    data = {name: (getattr(ctx.data, name).x, getattr(ctx.data, name).y) for name in ("train", "val", "test")}
    net, metrics, figure = train(cfg, data, ctx.device, ctx.seed, ctx.progress)
    arch = {"channels": list(cfg.channels), "hidden": cfg.hidden, "dropout": cfg.dropout}
    return SimpleNamespace(metrics=metrics, figures={"curves": figure}, artifacts={"arch": arch, "model": net.state_dict()})


class EpochLines:
    """Progress of a run on its own: one line per epoch on stdout, nothing per batch."""

    def update(self, epoch: int, epochs: int, batch: int, batches: int, loss: float) -> None:
        pass

    def note(self, message: str) -> None:
        print(message, flush=True)


def main(argv: list[str] | None = None) -> None:
    """Section 2 on its own: train, save both plots and the numbers, print the test accuracy."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("MNIST_DATA_DIR", "data")),
                        help="folder holding MNIST/raw/ (downloaded there when absent) [default: $MNIST_DATA_DIR, else data/]")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for sup_curves.png and sup_metrics.json")
    parser.add_argument("--seed", type=int, default=0, help="the one seed of the splits, the weights and the batches")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads; 1, like the report's pipeline, gives its numbers exactly [default: 1]")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check that it runs")
    args = parser.parse_args(argv)
    # deterministic kernels on a fixed number of threads: the same numbers on every run of this machine
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it to be deterministic
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    data = load_mnist(args.data_dir, args.seed, args.smoke)
    cfg = SMOKE if args.smoke else Config()
    rcParams.update({"font.size": 7.0, "lines.markersize": 2.5})  # the report's sizes (the pipeline sets its whole style)
    torch.manual_seed(args.seed)
    _, metrics, figure = train(cfg, data, device, args.seed, EpochLines())
    args.out.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out / "sup_curves.png", dpi=200)
    record = {"config": asdict(cfg), "seed": args.seed, "smoke": args.smoke, "metrics": metrics}
    (args.out / "sup_metrics.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"test accuracy {metrics['test_acc']:.2%} (test loss {metrics['test_loss']:.4f}); "
          f"plots in {args.out / 'sup_curves.png'}, numbers in {args.out / 'sup_metrics.json'}")


if __name__ == "__main__":
    main()
