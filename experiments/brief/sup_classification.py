"""Section 2 of the brief: a supervised CNN classifier for MNIST.

Question: train a CNN (``Conv2d``, ``Linear``, ``MaxPool2d``, ``ReLU``) on the 20,000-image subset;
after every epoch compute the average validation loss and accuracy and plot both; reach at least
97% test accuracy (our own bar: 99%).

Method: two conv-ReLU-maxpool blocks and a two-layer classifier head, cross-entropy (Eq. 1), Adam
under a one-cycle learning-rate schedule, and small random rotations, scalings and translations
of the training images as augmentation. Images are scaled to [-1, 1] like the course's skeleton.

This file is the course's skeleton filled in: the network, the training loop, the per-epoch
validation, the test accuracy and both plots are all here, and it runs on its own:

    python -m experiments.brief.sup_classification [--data-dir DIR] [--out DIR] [--smoke]

trains, writes the two plots (validation loss, validation accuracy) as ``sup_curves.png`` and prints
the test accuracy. It imports only small helpers that every section shares: the seeded MNIST splits
and batching (``data.py``; the brief's 20,000-image subset, 2,000 per digit, is drawn there once for
all sections), the plot style (``plotting.py``), the run contract ``Context``/``Result``
(``contract.py``) and seeding, devices and the progress line (``runtime.py``), so that the report's
pipeline runs it like every other section: ``python reproduce.py --only sup``.
"""
from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter
from torch import nn

from experiments.lib.contract import Context, Result
from experiments.lib.data import DATA_ENV, SMOKE_SPLIT, SplitSpec, batches, load_splits, to_float
from experiments.lib.plotting import TEXT_WIDTH_IN, new_figure, plot_curves
from experiments.lib.runtime import Progress, configure_determinism, map_batches, resolve_device, seed_everything

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


def describe(net: nn.Sequential) -> list[dict]:
    """One row per layer: its type, its sizes in short, output shape for one image, parameter count."""
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


def evaluate(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> tuple[float, float]:
    """Average cross-entropy and accuracy over a whole split."""
    net.eval()
    logits = map_batches(net, x, batch_size=batch_size)  # (N, 10)
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def train_epoch(net, opt, sched, x, y, cfg: Config, generator: torch.Generator, progress, epoch: int) -> float:
    """One pass of shuffled mini-batches; returns the average training loss."""
    net.train()
    order = batches(len(y), cfg.batch_size, generator)
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


def run(cfg: Config, ctx: Context) -> Result:
    dev, data = ctx.device, ctx.data
    x_tr, y_tr = to_float(data.train.x).to(dev), data.train.y.to(dev)
    x_va, y_va = to_float(data.val.x).to(dev), data.val.y.to(dev)
    x_te, y_te = to_float(data.test.x).to(dev), data.test.y.to(dev)
    arch = {"channels": list(cfg.channels), "hidden": cfg.hidden, "dropout": cfg.dropout}
    net = build_cnn(**arch).to(dev, memory_format=torch.channels_last)  # channels-last: faster CPU convolutions
    opt = torch.optim.Adam(net.parameters(), lr=cfg.max_lr)
    steps = cfg.epochs * math.ceil(len(y_tr) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.max_lr, total_steps=steps)
    generator = torch.Generator().manual_seed(ctx.seed)
    hist = {"train_loss": [], "val_loss": [], "val_acc": []}
    epoch_s = []
    for epoch in range(1, cfg.epochs + 1):
        start = time.perf_counter()
        hist["train_loss"].append(train_epoch(net, opt, sched, x_tr, y_tr, cfg, generator, ctx.progress, epoch))
        val_loss, val_acc = evaluate(net, x_va, y_va, cfg.eval_batch)
        hist["val_loss"].append(val_loss)
        hist["val_acc"].append(val_acc)
        epoch_s.append(time.perf_counter() - start)
        ctx.progress.note(f"epoch {epoch}/{cfg.epochs}: train loss {hist['train_loss'][-1]:.4f}, "
                          f"val loss {val_loss:.4f}, val acc {val_acc:.4f} ({epoch_s[-1]:.1f}s)")
    test_loss, test_acc = evaluate(net, x_te, y_te, cfg.eval_batch)
    best = min(range(cfg.epochs), key=hist["val_loss"].__getitem__)
    metrics = {
        **hist, "test_loss": test_loss, "test_acc": test_acc,
        "best_val_loss_epoch": best + 1, "val_loss_rise_after_best": hist["val_loss"][-1] - hist["val_loss"][best],
        "layers": describe(net), "params": sum(p.numel() for p in net.parameters()),
        "steps": steps, "timing": {"epoch_s": epoch_s},
    }
    return Result(metrics, {"curves": curves_figure(hist)}, {"arch": arch, "model": net.state_dict()})


def curves_figure(hist: dict):
    """Two panels: losses (validation, and training alongside) and validation accuracy per epoch."""
    fig, (ax_loss, ax_acc) = new_figure(2, width_in=0.6 * TEXT_WIDTH_IN, height_in=1.6)  # printed at 60% of the text width
    plot_curves(ax_loss, {"validation": hist["val_loss"], "training (running)": hist["train_loss"]},
                ylabel="cross-entropy (nats)")
    ax_loss.set_yscale("log")
    ax_loss.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax_loss.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax_loss.yaxis.set_minor_formatter(NullFormatter())
    plot_curves(ax_acc, {"validation": [100 * a for a in hist["val_acc"]]}, ylabel="accuracy (%)")
    ax_loss.legend(frameon=False, loc="upper right", handlelength=1.6)
    ax_loss.set_title("(a) average loss, log scale")
    ax_acc.set_title("(b) validation accuracy")
    return fig


def main() -> None:
    """Section 2 on its own: train, save both plots, print the test accuracy."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get(DATA_ENV, "data")), help="folder holding MNIST/raw/")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for sup_curves.png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check that it runs")
    args = parser.parse_args()
    configure_determinism(args.threads)
    data = load_splits(args.data_dir, args.seed, SMOKE_SPLIT if args.smoke else SplitSpec())
    ctx = Context(data=data, device=resolve_device("auto"), seed=args.seed, progress=Progress(SECTION), require=None, smoke=args.smoke)
    seed_everything(args.seed)
    result = run(SMOKE if args.smoke else Config(), ctx)
    args.out.mkdir(parents=True, exist_ok=True)
    result.figures["curves"].savefig(args.out / "sup_curves.png", dpi=200)
    print(f"test accuracy {result.metrics['test_acc']:.2%} (test loss {result.metrics['test_loss']:.4f}); "
          f"plots in {args.out / 'sup_curves.png'}")


if __name__ == "__main__":
    main()
