"""Q1 of the brief (section 3.4): an amortized VAE on the 20,000-image MNIST subset.

Question: train for 30 epochs; plot the loss after each epoch; show ten validation and ten
training images (one of each digit) with their reconstructions at epochs 1, 5, 10, 20 and 30;
did the auto-encoder overfit?

Method: encoder S(x) -> (mu, r = log sigma^2) and generator G(z) (``models.py``), trained with the
brief's Eq. 5 and its aggregation (pixel-averaged MSE plus dimension-averaged exact KL), Adam.
Every epoch both the training subset and the validation set are evaluated with fixed noise: the
brief's loss and its parts, the true negative ELBO of p(x|z) = N(G(z), sigma_p^2 I) in nats, the
KL in nats and the number of active latent units. Pixels are scaled to [-1, 1], the course
skeleton's normalisation: relative to [0, 1] it quadruples the squared error against the KL term,
which the brief's aggregation already over-weights by 12.25 (see ``vae.py``), so fewer latent units
collapse. Reconstructions are decoder means G(mu(x)).

Rerun: ``python reproduce.py --only q1``
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import vae
from .contract import Context, DigitGrid, Result
from .data import q1_picks, to_float
from .plotting import new_figure, plot_curves, to_unit_range

SECTION = "q1"
TITLE = "Q1: amortized VAE"
REQUIRES: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    latent_dim: int = 200  # d, the latent dimension (brief, section 3.2)
    sigma_p: float = 0.4  # standard deviation of p(x|z) = N(G(z), sigma_p^2 I) (section 3.2)
    epochs: int = 30  # passes over the training subset (Q1)
    lr: float = 1e-3  # Adam learning rate for S and G (section 3.2)
    batch_size: int = 128  # images per step
    channels: int = 24  # feature maps of the widest convolution in S and G
    pixel_range: tuple[float, float] = (-1.0, 1.0)  # pixels are scaled linearly to this range
    kl_weight: float = 1.0  # multiplier of the dimension-averaged KL; 1.0 is the brief's Eq. 5
    snapshot_epochs: tuple[int, ...] = (1, 5, 10, 20, 30)  # epochs whose generator and reconstructions are kept
    active_threshold: float = 0.01  # unit j is active when Var_x E_q[z_j] exceeds this
    eval_per_digit: int = 500  # images of each digit, from the training and from the validation set, evaluated every epoch
    eval_batch: int = 1000  # images per forward pass when evaluating


SMOKE = Config(epochs=2, batch_size=64, snapshot_epochs=(1, 2), eval_per_digit=20)

HEADLINE = ("val.neg_elbo", "validation -ELBO (nats)")
TOLERANCES = {"val.neg_elbo": (1e-4, 5.0), "train.neg_elbo": (1e-4, 5.0), "gap": (1e-4, 3.0)}


def columns(rows: list[dict]) -> dict[str, list]:
    """[{k: v}, ...] per epoch -> {k: [v, ...]}."""
    return {k: [r[k] for r in rows] for k in rows[0]}


def overfit_numbers(train: dict[str, list], val: dict[str, list], window: int = 5) -> dict:
    """The validation-minus-training -ELBO gap per epoch, its standard error and epoch-to-epoch jitter;
    the trend of each curve (mean of the last ``window`` epochs minus mean of the ``window`` before) and
    the noise of such a trend (std of the epoch-to-epoch changes of validation -ELBO / sqrt(window))."""
    gap = [v - t for v, t in zip(val["neg_elbo"], train["neg_elbo"])]
    w = min(window, len(gap) // 2)
    trend = lambda xs: float(np.mean(xs[-w:]) - np.mean(xs[-2 * w:-w])) if w else 0.0  # noqa: E731
    noise = lambda xs: float(np.std(np.diff(xs)) / math.sqrt(w)) if w and len(xs) > 2 else 0.0  # noqa: E731
    return {
        "gap": gap,
        "gap_se": math.hypot(train["neg_elbo_se"][-1], val["neg_elbo_se"][-1]),
        "gap_jitter": float(np.std(np.diff(gap))) if len(gap) > 2 else 0.0,
        "gap_growth": gap[-1] - gap[0],
        "gap_growth_relative": (gap[-1] - gap[0]) / abs(val["neg_elbo"][-1]),
        "trend_window": w,
        "val_trend": trend(val["neg_elbo"]),
        "train_trend": trend(train["neg_elbo"]),
        "trend_noise": noise(val["neg_elbo"][-2 * w:]),
    }


def scaling_numbers(cfg: Config) -> dict:
    """What the brief's aggregation is relative to the true ELBO, and how the pixel scale enters."""
    lo, hi = cfg.pixel_range
    # loss = ||x - G||^2 / (2 s^2) + KL up to scale, with s^2 = D / (2 d kl_weight)
    sigma = math.sqrt(vae.PIXELS / (2 * cfg.latent_dim * cfg.kl_weight))
    return {
        "pixels": vae.PIXELS,
        "effective_kl_weight": vae.effective_kl_weight(cfg.sigma_p, cfg.latent_dim, cfg.kl_weight),
        "effective_sigma": sigma,
        "effective_sigma_unit_range": sigma / (hi - lo),
        "density_shift_unit_range": vae.density_shift(cfg.pixel_range),
    }


def run(cfg: Config, ctx: Context) -> Result:
    lo, hi = cfg.pixel_range
    x_tr = to_float(ctx.data.train.x, lo, hi).to(ctx.device)
    x_va = to_float(ctx.data.val.x, lo, hi).to(ctx.device)
    chosen = q1_picks(ctx.data, ctx.seed, cfg.eval_per_digit)
    picks = chosen.shown
    shown = {"val": x_va[picks["val"].to(ctx.device)], "train": x_tr[picks["train"].to(ctx.device)]}
    # class-balanced subsets of equal size, so that the train/validation gap compares like with like
    subsets = {name: p.flatten() for name, p in chosen.subsets.items()}
    evals = {name: x[subsets[name].to(ctx.device)] for name, x in (("train", x_tr), ("val", x_va))}
    fit = vae.fit(cfg, ctx, x_tr, evals, shown)
    train, val = columns(fit.history["train"]), columns(fit.history["val"])
    metrics = {
        "train_loss_running": fit.history["train_loss_running"], "train": train, "val": val,
        **overfit_numbers(train, val), **scaling_numbers(cfg),
        "snapshot_epochs": list(cfg.snapshot_epochs), "eval_images": 10 * cfg.eval_per_digit,
        "params": {"encoder": sum(p.numel() for p in fit.encoder.parameters()),
                   "generator": sum(p.numel() for p in fit.decoder.parameters())},
        "pixel_values": vae.PIXELS * len(x_tr),
        "steps": cfg.epochs * math.ceil(len(x_tr) / cfg.batch_size),
        "recon_error": [fit.snapshots[e]["recon_error"] for e in cfg.snapshot_epochs],
        "shown_images": {name: getattr(ctx.data, name).index[p].tolist() for name, p in picks.items()},
        "timing": {"epoch_s": fit.epoch_s, "mean_epoch_s": sum(fit.epoch_s) / len(fit.epoch_s)},
    }
    figures = {"loss": loss_figure(fit.history["train_loss_running"], train, val, metrics["gap"])}
    for name in ("val", "train"):
        recons = {e: s["recon"][name] for e, s in fit.snapshots.items()}
        figures[f"recon_{name}"] = recon_grid(shown[name], recons, cfg)
    artifacts = {
        "arch": vae.arch(cfg), "loss": {"sigma_p": cfg.sigma_p, "kl_weight": cfg.kl_weight}, "encoder": fit.encoder.state_dict(), "decoder": fit.decoder.state_dict(),
        "decoders": {str(e): s["decoder"] for e, s in fit.snapshots.items()},
        "recon_train": {str(e): s["recon"]["train"] for e, s in fit.snapshots.items()},
        "shown_train": picks["train"], "eval_train": subsets["train"],
    }
    return Result(metrics, figures, artifacts)


def recon_grid(images: torch.Tensor, recons: dict[int, torch.Tensor], cfg: Config) -> DigitGrid:
    """Row 0 the ten originals (10, 1, 28, 28), then the reconstructions of each snapshot epoch."""
    rows = [images.cpu()] + [recons[e] for e in cfg.snapshot_epochs]
    return DigitGrid(to_unit_range(torch.stack(rows)[:, :, 0], *cfg.pixel_range),
                     ("original", *(f"epoch {e}" for e in cfg.snapshot_epochs)), tuple(map(str, range(10))))


def loss_figure(running: list[float], train: dict, val: dict, gap: list[float]):
    """(a) the brief's loss, (b) its two parts, (c) the gap of the true -ELBO, per epoch."""
    fig, (a, b, c) = new_figure(3, width_in=6.9, height_in=1.85)
    plot_curves(a, {"train": train["loss"], "validation": val["loss"], "train (running)": running}, ylabel="loss (Eq. 5)")
    plot_curves(b, {"MSE train": train["mse"], "MSE val": val["mse"], "KL train": train["kl"], "KL val": val["kl"]},
                ylabel="per pixel / per dimension")
    plot_curves(c, {"validation \u2212 training": gap}, ylabel="\u2212ELBO gap (nats / image)")
    c.axhline(0.0, color="0.5", linewidth=0.6)
    for ax, title in zip((a, b, c), ("(a) loss = MSE + KL", "(b) its two parts", "(c) true \u2212ELBO, val \u2212 train")):
        ax.set_title(title)
    return fig
