# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""Q1 of the brief (section 3.4): an amortized VAE on the 20,000-image MNIST subset.

Question: train for 30 epochs; plot the loss after each epoch; show ten validation and ten
training images (one of each digit) with their reconstructions at epochs 1, 5, 10, 20 and 30;
did the auto-encoder overfit?

Method: encoder S(x) -> (mu, r = log sigma^2) and generator G(z) (``models.py``), trained with the
brief's Eq. 5 and its aggregation (pixel-averaged MSE plus dimension-averaged exact KL), Adam.
Every epoch class-balanced subsets of the training and validation sets (``data.q1_picks``) are
evaluated with one fixed z ~ q_x per image: the brief's loss and its parts, the true negative ELBO
of p(x|z) = N(G(z), sigma_p^2 I) in nats with its standard error, the KL in nats and the active
latent units. The overfitting evidence is the validation-minus-training -ELBO gap beside a control,
the same difference between two halves of the validation subset (no extra forward pass); after
the last epoch, IWAE_k and ELBO_k with k = 100 latents per image on part of both subsets. Pixels are scaled to [-1, 1], the course
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

from experiments.lib import vae
from experiments.lib.contract import Context, DigitGrid, Result
from experiments.lib.data import q1_picks, to_float
from experiments.lib.plotting import new_figure, to_unit_range
from experiments.lib.prob import importance_log_weights, log_mean_exp

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
    iwae_per_digit: int = 50  # images of each digit, the first of each evaluation subset, bounded with k samples at the end
    iwae_samples: int = 100  # k, latents z ~ q_x per image in the multi-sample bounds (IWAE_k, ELBO_k)
    iwae_batch: int = 100  # images per call of the bound; k * iwae_batch decoder outputs at once


SMOKE = Config(epochs=2, batch_size=64, snapshot_epochs=(1, 2), eval_per_digit=20, iwae_per_digit=2, iwae_samples=10)

HEADLINE = ("val.neg_elbo", "validation -ELBO (nats)")
TOLERANCES = {"val.neg_elbo": (1e-4, 5.0), "train.neg_elbo": (1e-4, 5.0), "gap": (1e-4, 3.0)}


def columns(rows: list[dict]) -> dict[str, list]:
    """[{k: v}, ...] per epoch -> {k: [v, ...]}."""
    return {k: [r[k] for r in rows] for k in rows[0]}


def difference(a: dict[str, list], b: dict[str, list]) -> tuple[list[float], list[float]]:
    """Per epoch, mean -ELBO of subset a minus that of the disjoint subset b, and its standard error."""
    return ([x - y for x, y in zip(a["neg_elbo"], b["neg_elbo"])],
            [math.hypot(x, y) for x, y in zip(a["neg_elbo_se"], b["neg_elbo_se"])])


def overfit_numbers(h: dict[str, dict[str, list]], window: int = 5) -> dict:
    """The evidence for Q1's verdict, from the per-epoch columns ``h`` of the subsets train, val and
    the two halves val_a, val_b of val.

    gap: validation minus training -ELBO; control: the same difference between the two validation
    halves, which neither were trained on (what "no overfitting" looks like). Both are differences
    between fixed subsets, so they carry a fixed offset from the images drawn, known to +-2 SE.
    Trends compare the mean of the last ``window`` epochs with the mean of the ``window`` before;
    their standard error is std(epoch-to-epoch change) / sqrt(window).
    """
    gap, gap_se = difference(h["val"], h["train"])
    control, control_se = difference(h["val_a"], h["val_b"])
    w = min(window, len(gap) // 2)
    late = lambda xs: float(np.mean(xs[-w:])) if w else xs[-1]  # noqa: E731
    trend = lambda xs: late(xs) - float(np.mean(xs[-2 * w:-w])) if w else 0.0  # noqa: E731
    trend_se = lambda xs: float(np.std(np.diff(xs[-2 * w:])) / math.sqrt(w)) if w else 0.0  # noqa: E731
    return {
        "gap": gap, "gap_se_epochs": gap_se, "gap_se": gap_se[-1],
        "control": control, "control_se_epochs": control_se, "control_se": control_se[-1],
        # averages over the last ``window`` epochs: how far a difference between fixed subsets has drifted
        "gap_late": late(gap), "control_late": late(control),
        "gap_relative": gap[-1] / h["val"]["neg_elbo"][-1],
        "trend_window": w,
        "val_trend": trend(h["val"]["neg_elbo"]), "train_trend": trend(h["train"]["neg_elbo"]),
        "trend_se": trend_se(h["val"]["neg_elbo"]),
    }


@torch.no_grad()
def multi_sample_bounds(enc, dec, x: torch.Tensor, sigma_p: float, samples: int, generator: torch.Generator,
                        batch: int) -> dict[str, torch.Tensor]:
    """Per image of x (N, 1, 28, 28), in nats: -IWAE_k = -log (1/k) sum_i w_i (Eq. 9 with M = k, a lower
    bound on log p(x) that tightens with k; Burda et al. 2015) and -ELBO_k = -(1/k) sum_i log w_i, the
    ELBO averaged over the same k draws z_i ~ q_x; each (N,)."""
    enc.eval()
    dec.eval()
    decode = lambda z: dec(z).flatten(1)  # noqa: E731  (n, d) -> (n, D)
    out: dict[str, list] = {"neg_iwae": [], "neg_elbo_k": []}
    for xb in x.split(batch):
        mean, logvar = enc(xb)  # (B, d) each
        log_w = importance_log_weights(xb.flatten(1), mean, logvar, decode, sigma_p, samples, samples, generator)  # (k, B)
        out["neg_iwae"].append(-log_mean_exp(log_w))
        out["neg_elbo_k"].append(-log_w.mean(0))
    return {k: torch.cat(v) for k, v in out.items()}


def bound_numbers(bounds: dict[str, dict[str, torch.Tensor]]) -> dict:
    """Split means and standard errors of the multi-sample bounds, the tightening -ELBO_k - (-IWAE_k) >= 0
    (paired per image), and the validation-minus-training gap of -IWAE_k."""
    mean_se = lambda t: (t.mean().item(), (t.std() / math.sqrt(len(t))).item())  # noqa: E731
    out: dict = {}
    for name, b in bounds.items():
        (iw, iw_se), (el, el_se), (ti, ti_se) = map(mean_se, (b["neg_iwae"], b["neg_elbo_k"], b["neg_elbo_k"] - b["neg_iwae"]))
        out[name] = {"neg_iwae": iw, "neg_iwae_se": iw_se, "neg_elbo_k": el, "neg_elbo_k_se": el_se,
                     "tightening": ti, "tightening_se": ti_se}
    out["gap"] = out["val"]["neg_iwae"] - out["train"]["neg_iwae"]
    out["gap_se"] = math.hypot(out["val"]["neg_iwae_se"], out["train"]["neg_iwae_se"])
    return out


def scaling_numbers(cfg: Config) -> dict:
    """What the brief's aggregation is relative to the true ELBO, and how the pixel scale enters."""
    lo, hi = cfg.pixel_range
    # loss = ||x - G||^2 / (2 s^2) + KL up to scale, with s^2 = D / (2 d kl_weight)
    sigma = math.sqrt(vae.PIXELS / (2 * cfg.latent_dim * cfg.kl_weight))
    return {
        "pixels": vae.PIXELS,
        "effective_kl_weight": vae.effective_kl_weight(cfg.sigma_p, cfg.latent_dim, cfg.kl_weight),
        # Eq. 7 as printed is 2 KL_j + log sigma_j: taken literally it doubles the KL weight
        "effective_kl_weight_eq7_literal": 2 * vae.effective_kl_weight(cfg.sigma_p, cfg.latent_dim, cfg.kl_weight),
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
    subsets = {name: p.flatten() for name, p in chosen.subsets.items()}  # (10 k,), digit by digit
    evals = {name: x[subsets[name].to(ctx.device)] for name, x in (("train", x_tr), ("val", x_va))}
    # the control: the first and the second half of each digit's validation images
    k = cfg.eval_per_digit
    first = torch.arange(10 * k, device=ctx.device) % k < k // 2  # (10 k,) bool
    fit = vae.fit(cfg, ctx, x_tr, evals, shown, parts={"val_a": ("val", first), "val_b": ("val", ~first)})
    h = {name: columns(fit.history[name]) for name in ("train", "val", "val_a", "val_b")}
    noise = torch.Generator().manual_seed(ctx.seed + 3)
    bounds = {name: multi_sample_bounds(fit.encoder, fit.decoder, x[(torch.arange(10 * k) % k < cfg.iwae_per_digit).to(ctx.device)],
                                        cfg.sigma_p, cfg.iwae_samples, noise, cfg.iwae_batch) for name, x in evals.items()}
    metrics = {
        "train_loss_running": fit.history["train_loss_running"], **h,
        **overfit_numbers(h), "bounds": {**bound_numbers(bounds), "samples": cfg.iwae_samples, "images": 10 * cfg.iwae_per_digit},
        **scaling_numbers(cfg),
        "snapshot_epochs": list(cfg.snapshot_epochs), "eval_images": 10 * cfg.eval_per_digit,
        "params": {"encoder": sum(p.numel() for p in fit.encoder.parameters()),
                   "generator": sum(p.numel() for p in fit.decoder.parameters())},
        "steps": cfg.epochs * math.ceil(len(x_tr) / cfg.batch_size),
        "recon_error": [fit.snapshots[e]["recon_error"] for e in cfg.snapshot_epochs],
        # mean squared error per pixel of the ten shown reconstructions G(mu(x)), per snapshot epoch
        "shown_mse": {name: [((fit.snapshots[e]["recon"][name] - x.cpu()) ** 2).mean().item() for e in cfg.snapshot_epochs]
                      for name, x in shown.items()},
        "shown_images": {name: getattr(ctx.data, name).index[p].tolist() for name, p in picks.items()},
        "timing": {"epoch_s": fit.epoch_s, "mean_epoch_s": sum(fit.epoch_s) / len(fit.epoch_s)},
    }
    figures = {"loss": loss_figure(fit.history["train_loss_running"], metrics)}
    for name in ("val", "train"):
        recons = {e: s["recon"][name] for e, s in fit.snapshots.items()}
        figures[f"recon_{name}"] = recon_grid(shown[name], recons, cfg)
    artifacts = {
        "arch": vae.arch(cfg), "loss": {"sigma_p": cfg.sigma_p, "kl_weight": cfg.kl_weight}, "encoder": fit.encoder.state_dict(), "decoder": fit.decoder.state_dict(),
        "decoders": {str(e): s["decoder"] for e, s in fit.snapshots.items()},
        "recon_train": {str(e): s["recon"]["train"] for e, s in fit.snapshots.items()},
        "shown_train": picks["train"], "eval_train": subsets["train"],
        "history": {"neg_elbo": h["train"]["neg_elbo"]},  # training -ELBO per epoch, plotted beside Q3's in the findings
    }
    return Result(metrics, figures, artifacts)


def recon_grid(images: torch.Tensor, recons: dict[int, torch.Tensor], cfg: Config) -> DigitGrid:
    """Row 0 the ten originals (10, 1, 28, 28), then the reconstructions of each snapshot epoch."""
    rows = [images.cpu()] + [recons[e] for e in cfg.snapshot_epochs]
    return DigitGrid(to_unit_range(torch.stack(rows)[:, :, 0], *cfg.pixel_range),
                     ("original", *(f"epoch {e}" for e in cfg.snapshot_epochs)), tuple(map(str, range(10))))


TRAIN = {"color": "C0", "linestyle": "-", "zorder": 3}  # training subset: a line, drawn over the markers
VAL = {"color": "C1", "linestyle": "none", "marker": "o", "markerfacecolor": "none", "markersize": 3.2}  # validation: hollow circles


def loss_figure(running: list[float], m: dict):
    """(a) the brief's loss, (b) its two parts, (c) the validation-minus-training gap of the true
    -ELBO with its control, both +-2 SE, (d) active latent units."""
    fig, (a, b, c, d) = new_figure(4, width_in=7.0, height_in=1.85)
    ep = np.arange(1, len(running) + 1)
    tr, va = m["train"], m["val"]
    a.plot(ep, tr["loss"], label="train", **TRAIN)
    a.plot(ep, va["loss"], label="validation", **VAL)
    a.plot(ep, running, color="0.45", linestyle=":", label="train, running")
    a.set_ylabel("loss (Eq. 5)")
    b.plot(ep, tr["mse"], label="MSE train", **TRAIN)
    b.plot(ep, va["mse"], label="MSE val", **VAL)
    b.plot(ep, tr["kl"], label="KL train", **{**TRAIN, "color": "C2"})
    b.plot(ep, va["kl"], label="KL val", **{**VAL, "color": "C3", "marker": "s"})
    b.set_ylabel("per pixel / per latent dim.")
    for key, label, style in (("gap", "val \u2212 train", TRAIN), ("control", "val half A \u2212 half B", {"color": "C2", "linestyle": "--"})):
        mid, se = np.array(m[key]), 2 * np.array(m[f"{key}_se_epochs"])
        c.fill_between(ep, mid - se, mid + se, color=style["color"], alpha=0.15, linewidth=0)
        c.plot(ep, mid, label=label, **style)
    c.axhline(0.0, color="0.4", linewidth=0.6)
    low, high = c.get_ylim()
    c.set_ylim(low, high + 0.6 * (high - low))  # headroom above the bands for the legend
    c.set_ylabel("\u2212ELBO difference (nats)")
    d.plot(ep, tr["active_units"], label="active, train", **TRAIN)
    d.plot(ep, va["active_units"], label="active, val", **VAL)
    d.plot(ep, tr["kl_units_90"], label="hold 90% of KL", color="C2", linestyle="--")
    d.set_ylabel("latent units")
    d.set_ylim(0, 1.8 * max(tr["active_units"] + va["active_units"] + [1]))  # headroom for the legend
    for ax, title in zip((a, b, c, d), ("(a) loss = MSE + KL", "(b) its two parts", "(c) gap and control, \u00b12 SE",
                                        "(d) latent units in use")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3, linewidth=0.5)
    for ax, where in zip((a, b, c, d), ("upper right", "upper right", "upper left", "upper right")):
        ax.legend(frameon=False, handlelength=1.6, loc=where)
    return fig
