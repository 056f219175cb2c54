"""Companion, Toronto CSC412/2506 (sections 5 and 6 of its text): true posteriors of the 2-D VAE
against the recognition model, and inference from the top half of a digit.

Questions: for a few images, contours of the true posterior p(z|x) (normalised on the grid) with
those of q(z|x) over them, and KL(q || p(z|x)); for the top half of a digit, the true posterior
p(z | x_top) from the top 14 rows' likelihood, a Gaussian N(mu, sigma^2 I) fitted to it by stochastic
variational inference (Adam on the ELBO, no encoder; the course's family, with a per-coordinate variance
fitted beside it to measure what one sigma costs), and completions of the bottom half.

Method: tor_vae's decoder and encoder. Each posterior is first found on tor_vae's grid, then
evaluated on a finer local grid (``window_points``^2 points) over the region holding its mass and q's
(zoomed per image, each axis with its own spacing; the figure's panels show these windows), where
KL(q || p(z|x)) = sum_g q_g (log q_g - log p(z_g|x)) with q_g the grid-normalised q. Its check:
the identity log p(x) - ELBO = KL(q || p(z|x)), with the ELBO from ``elbo_samples`` draws. SVI
(``latent2d.svi``) also refits each full image's Gaussian from the encoder's, so that the gap between
log p(x) and the encoder's ELBO splits into an amortization gap and an approximation gap
(Cremer et al. 2018). Completions decode z ~ q_top and keep the real top half.

Rerun: ``python reproduce.py --only tor_posterior`` (runs tor_vae first when its checkpoint is stale)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from experiments.lib import latent2d, mlp_vae
from experiments.courses.toronto import vae as tor_vae
from experiments.lib.contract import Context, DigitGrid, Result
from experiments.lib.plotting import new_figure
from experiments.lib.prob import diag_gaussian_log_prob, gaussian_sample, grid_log_integral, log_weights

SECTION = "tor_posterior"
TITLE = "Toronto CSC412: true posteriors, the top half of a digit, SVI"
REQUIRES = ("tor_vae",)


@dataclass(frozen=True)
class Config:
    images: int = 3  # test images (the first ones) whose posteriors are drawn, and then the one with the largest
    # gap log p(x) - ELBO among tor_vae's check images
    gap_samples: int = 200  # draws of q for the ELBO that finds that image
    top_images: tuple[int, ...] = (4, 5, 6)  # positions among the first test images used for the top half
    top_rows: int = 14  # rows of the top half (the course: 14 of 28)
    window_sd: float = 4.0  # the local grid covers each Gaussian's mean +- this many standard deviations
    support: float = 1e-4  # and the region where the posterior on tor_vae's grid is above this fraction of its peak
    window_points: int = 161  # points per axis of the local grid (zoomed per image, each axis its own spacing)
    mode_floor: float = 0.01  # a local maximum of the posterior counts as a mode above this fraction of its peak
    elbo_samples: int = 2000  # draws of q for each ELBO
    svi_steps: int = 600  # Adam steps of SVI
    svi_lr: float = 0.05  # their learning rate
    svi_samples: int = 16  # draws of q per SVI step
    completions: int = 8  # bottom halves drawn for each top half
    stream: int = 20  # generators seeded with seed + stream + k


SMOKE = Config(images=2, top_images=(2,), window_points=41, elbo_samples=50, svi_steps=20, completions=3)

HEADLINE = ("kl_enc_mean", "KL(q || p(z|x)), nats")
TOLERANCES = {"kl_enc_mean": (1e-4, 1.0)}


def moments(points: torch.Tensor, log_post: torch.Tensor, cell: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (n, 2) and standard deviation (n, 2) of grid posteriors log p(z_g|x) (n, G)."""
    w = (log_post + math.log(cell)).exp()  # (n, G), sums to 1
    mean = w @ points
    sd = (w @ points ** 2 - mean ** 2).clamp(min=0).sqrt()
    return mean, sd


def support_box(points: torch.Tensor, log_post: torch.Tensor, support: float, step: float) -> torch.Tensor:
    """The bounding box (2, 2) = [low, high] of the grid points (G, 2) where the grid posterior log p(z_g|x) (G,) is
    above ``support`` times its peak, widened by one grid step each way."""
    keep = points[log_post >= log_post.max() + math.log(support)]
    return torch.stack([keep.min(0).values - step, keep.max(0).values + step])


def window(boxes: list[torch.Tensor], n: int) -> tuple[torch.Tensor, float]:
    """A grid (n^2, 2), z_1 major, over the union of boxes [low, high] (2, 2) plus a tenth of its size each way,
    zoomed per image: its two axes have their own spacing. Returns the points and the cell area."""
    low = torch.stack([b[0] for b in boxes]).min(0).values
    high = torch.stack([b[1] for b in boxes]).max(0).values
    pad = (high - low) / 10
    axes = [torch.linspace(lo.item(), hi.item(), n) for lo, hi in zip(low - pad, high + pad)]
    return torch.cartesian_prod(*axes), (axes[0][1] - axes[0][0]).item() * (axes[1][1] - axes[1][0]).item()


def gaussian_box(mean: torch.Tensor, logvar: torch.Tensor, sds: float) -> torch.Tensor:
    """[mean - sds * sigma, mean + sds * sigma], (2, 2)."""
    half = sds * (0.5 * logvar).exp()
    return torch.stack([mean - half, mean + half])


@torch.no_grad()
def posterior_on_window(model, x: torch.Tensor, boxes: list[torch.Tensor], cfg: Config, pixels: slice = slice(None)):
    """log p(z_g | x) on a grid over ``boxes``, the grid and its log p(x); x (1, 784)."""
    points, cell = window(boxes, cfg.window_points)
    log_joint = latent2d.grid_log_joint(model, x, points, pixels)[0]  # (G,)
    log_p = grid_log_integral(log_joint, cell)
    return points, log_joint - log_p, log_p, cell


def modes(log_post: torch.Tensor, n: int, floor: float) -> int:
    """Local maxima (over 5 x 5 neighbourhoods) of a grid posterior (n^2,) whose density is above ``floor`` times the peak."""
    dens = (log_post - log_post.max()).exp().reshape(1, 1, n, n)
    peaks = (dens == torch.nn.functional.max_pool2d(dens, 5, stride=1, padding=2)) & (dens > floor)
    return int(peaks.sum())


def grid_kl(points: torch.Tensor, log_post: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> float:
    """KL(q || p) = sum_g q_g (log q_g - log p_g) with q normalised on the grid (it may be narrow)."""
    log_q = diag_gaussian_log_prob(points, mean, logvar)  # (G,)
    q = torch.softmax(log_q, 0)
    # log q_g - log p_g with both as densities: the cell area cancels
    return (q * (log_q - log_q.logsumexp(0) - (log_post - log_post.logsumexp(0)))).sum().item()


def contour(ax, points: torch.Tensor, n: int, log_density: torch.Tensor, colour: str, style: str, label: str) -> None:
    """Contours of a density on the grid at 2%, 10%, 30%, 50%, 70% and 90% of its maximum (2%: a low second mode shows)."""
    z1, z2 = points[:, 0].reshape(n, n), points[:, 1].reshape(n, n)
    dens = (log_density - log_density.max()).exp().reshape(n, n)
    ax.contour(z1.numpy(), z2.numpy(), dens.numpy(), levels=[0.02, 0.1, 0.3, 0.5, 0.7, 0.9], colors=colour, linestyles=style,
               linewidths=0.7)
    ax.plot([], [], color=colour, linestyle=style, linewidth=0.7, label=label)


@torch.no_grad()
def elbo_of(model, x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, cfg: Config, gen, pixels: slice = slice(None)) -> float:
    """Monte Carlo ELBO of one image x (1, 784) under q = N(mean, diag exp(logvar)), each (d,)."""
    log_w = log_weights(mean.unsqueeze(0), logvar.unsqueeze(0), model.log_joint(x, pixels), cfg.elbo_samples, 500, gen)
    return log_w.mean().item()


def run(cfg: Config, ctx: Context) -> Result:
    model = mlp_vae.restore(ctx.require("tor_vae"), torch.device("cpu"))
    tv = tor_vae.SMOKE if ctx.smoke else tor_vae.Config()
    x_all, y_all = tor_vae.check_images(tv, ctx)
    gen = torch.Generator().manual_seed(ctx.seed + cfg.stream)
    axis, grid_points = latent2d.grid(tv.grid_extent, tv.grid_step)
    cell = tv.grid_step ** 2

    # ---- item 5: full images, the encoder's q and the SVI refit
    with torch.no_grad():
        gap = tor_vae.grid_log_p(tv, model, x_all, tv.grid_step)[0] - model.log_px(x_all, cfg.gap_samples, gen)["elbo"]
    shown = list(range(cfg.images)) + ([int(gap.argmax())] if int(gap.argmax()) >= cfg.images else [])
    x, y = x_all[shown], y_all[shown]
    with torch.no_grad():
        mean, logvar = model.encode(x)
        log_post_coarse = latent2d.grid_log_joint(model, x, grid_points)
        log_post_coarse = log_post_coarse - grid_log_integral(log_post_coarse, cell).unsqueeze(1)
    _, post_sd = moments(grid_points, log_post_coarse, cell)
    svi_mean, svi_logvar = latent2d.svi(model, x, mean, logvar, cfg.svi_steps, cfg.svi_lr, cfg.svi_samples, gen)
    rows, fig, axes = [], *new_figure(len(shown), 1.75 * len(shown), 2.0)
    for i in range(len(shown)):
        boxes = [support_box(grid_points, log_post_coarse[i], cfg.support, tv.grid_step),
                 gaussian_box(mean[i], logvar[i], cfg.window_sd), gaussian_box(svi_mean[i], svi_logvar[i], cfg.window_sd)]
        points, log_post, log_p, _ = posterior_on_window(model, x[i:i + 1], boxes, cfg)
        # log of the posterior's density at q's mean (and at SVI's) over its peak: low for a q between two modes
        at_q, at_svi = latent2d.grid_log_joint(model, x[i:i + 1], torch.stack([mean[i], svi_mean[i]]))[0] - log_p - log_post.max()
        elbos = [elbo_of(model, x[i:i + 1], mu, lv, cfg, gen) for mu, lv in ((mean[i], logvar[i]), (svi_mean[i], svi_logvar[i]))]
        rows.append({"image": shown[i] + 1, "digit": int(y[i]), "log_p": log_p.item(), "elbo_enc": elbos[0], "elbo_svi": elbos[1],
                     "kl_enc": grid_kl(points, log_post, mean[i], logvar[i]),
                     "kl_svi": grid_kl(points, log_post, svi_mean[i], svi_logvar[i]),
                     "kl_enc_check": log_p.item() - elbos[0], "kl_svi_check": log_p.item() - elbos[1],
                     "amortization_gap": elbos[1] - elbos[0], "q_sd": (0.5 * logvar[i]).exp().tolist(),
                     "post_sd": post_sd[i].tolist(), "modes": modes(log_post, cfg.window_points, cfg.mode_floor),
                     "log_density_at_q_mean": at_q.item(), "log_density_at_svi_mean": at_svi.item(),
                     "window": [points.min(0).values.tolist(), points.max(0).values.tolist()]})
        ax = axes[i]
        contour(ax, points, cfg.window_points, log_post, "black", "solid", "p(z|x)")
        for mu, lv, colour, style, label in ((mean[i], logvar[i], "C3", "dashed", "q(z|x), encoder"),
                                             (svi_mean[i], svi_logvar[i], "C0", "dotted", "q, SVI")):
            contour(ax, points, cfg.window_points, diag_gaussian_log_prob(points, mu, lv), colour, style, label)
        ax.set_title(f"test image {shown[i] + 1} (digit {int(y[i])})")
        ax.set_xlabel("$z_1$")  # no equal aspect: each panel is zoomed to its own window
    axes[0].set_ylabel("$z_2$")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside upper center", ncols=3, frameon=False, fontsize=6)

    # ---- item 6: the top half, SVI from the prior, completions
    top = slice(0, 28 * cfg.top_rows)
    xt = x_all[list(cfg.top_images)]
    with torch.no_grad():
        log_top = latent2d.grid_log_joint(model, xt, grid_points, top)
        log_p_top = grid_log_integral(log_top, cell)
        log_top = log_top - log_p_top.unsqueeze(1)
    prior = torch.zeros(len(xt), 2)  # SVI starts at the prior N(0, I)
    # the course's family N(mu, sigma^2 I), and the per-coordinate one beside it: what the single sigma costs
    top_mean, top_logvar = latent2d.svi(model, xt, prior, prior, cfg.svi_steps, cfg.svi_lr, cfg.svi_samples, gen, top,
                                        isotropic=True)
    diag_mean, diag_logvar = latent2d.svi(model, xt, prior, prior, cfg.svi_steps, cfg.svi_lr, cfg.svi_samples, gen, top)
    # convergence: the same fit with twice the steps
    long_mean, long_logvar = latent2d.svi(model, xt, prior, prior, 2 * cfg.svi_steps, cfg.svi_lr, cfg.svi_samples, gen, top,
                                          isotropic=True)
    top_fig, top_axes = new_figure(len(xt), 1.9 * len(xt), 2.0)
    top_rows, images = [], []
    for j in range(len(xt)):
        boxes = [support_box(grid_points, log_top[j], cfg.support, tv.grid_step), gaussian_box(top_mean[j], top_logvar[j], cfg.window_sd),
                 gaussian_box(diag_mean[j], diag_logvar[j], cfg.window_sd), gaussian_box(long_mean[j], long_logvar[j], cfg.window_sd)]
        points, log_post, log_p, _ = posterior_on_window(model, xt[j:j + 1], boxes, cfg, top)
        elbo = elbo_of(model, xt[j:j + 1], top_mean[j], top_logvar[j], cfg, gen, top)
        top_rows.append({"image": cfg.top_images[j] + 1, "digit": int(y_all[cfg.top_images[j]]), "log_p_top": log_p.item(),
                         "log_p_top_coarse": log_p_top[j].item(), "elbo_svi": elbo,
                         "kl_svi": grid_kl(points, log_post, top_mean[j], top_logvar[j]), "kl_svi_check": log_p.item() - elbo,
                         "svi_sd": (0.5 * top_logvar[j, 0]).exp().item(), "kl_svi_diag": grid_kl(points, log_post, diag_mean[j], diag_logvar[j]),
                         "svi_diag_sd": (0.5 * diag_logvar[j]).exp().tolist(),
                         "kl_svi_twice_steps": grid_kl(points, log_post, long_mean[j], long_logvar[j]),
                         "modes": modes(log_post, cfg.window_points, cfg.mode_floor)})
        ax = top_axes[j]
        contour(ax, points, cfg.window_points, log_post, "black", "solid", "p(z | top half)")
        contour(ax, points, cfg.window_points, diag_gaussian_log_prob(points, top_mean[j], top_logvar[j]), "C0", "dotted",
                "q = N(μ, σ²I), SVI")
        contour(ax, points, cfg.window_points, diag_gaussian_log_prob(points, diag_mean[j], diag_logvar[j]), "C2", "dashdot",
                "q, a variance per axis")
        ax.set_title(f"top half of test image {cfg.top_images[j] + 1}")
        ax.set_xlabel("$z_1$")
        with torch.no_grad():
            z = gaussian_sample(top_mean[j].expand(cfg.completions, 2), top_logvar[j].expand(cfg.completions, 2), gen)
            means = model.decoder_mean(z)  # (C, 784)
        completed = torch.cat([xt[j, top].expand(cfg.completions, -1), means[:, top.stop:]], 1)
        shown_top = torch.cat([xt[j, top], torch.full((784 - top.stop,), 0.15)])  # the hidden half in light grey
        images.append(np.concatenate([xt[j].reshape(1, 28, 28).numpy(), shown_top.reshape(1, 28, 28).numpy(),
                                      completed.reshape(-1, 28, 28).numpy()]))
    top_axes[0].set_ylabel("$z_2$")
    top_fig.legend(*top_axes[0].get_legend_handles_labels(), loc="outside upper center", ncols=3, frameon=False, fontsize=6)
    completions = DigitGrid(np.stack(images), tuple(f"test image {k + 1}" for k in cfg.top_images),
                            ("whole image", "top half", *(f"z{c + 1} ~ q" for c in range(cfg.completions))))
    metrics = {
        "posteriors": rows, "top": top_rows,
        "kl_enc_mean": float(np.mean([r["kl_enc"] for r in rows])),
        "kl_enc_median": float(np.median([r["kl_enc"] for r in rows])),
        "kl_svi_mean": float(np.mean([r["kl_svi"] for r in rows])),
        "amortization_gap_mean": float(np.mean([r["amortization_gap"] for r in rows])),
        "gap_mean": float(np.mean([r["log_p"] - r["elbo_enc"] for r in rows])),
        "max_kl_check_error": max(abs(r[k] - r[k + "_check"]) for r in rows + top_rows for k in ("kl_enc", "kl_svi") if k in r),
        "svi_evaluations": cfg.svi_steps * cfg.svi_samples,
    }
    return Result(metrics, {"contours": fig, "top": top_fig, "completions": completions})
