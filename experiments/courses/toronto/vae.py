"""Companion, Toronto CSC412/2506 (sections 2 to 5 of its text): the 2-D Bernoulli VAE of Kingma
and Welling (2013), Appendix C, and log p(x) by numerical integration over its latent plane.

Questions: training and test ELBO; log p(x) on an equally spaced 2-D grid with log-sum-exp, the
normalised posterior integrating to 1, beside the ELBO and importance sampling (the report's Eq. 9)
for 20 images; 10 prior samples as Bernoulli means beside a binary sample (10 x 2); 10 images, their
p(x|z) at z ~ q and a sample (10 x 3); the encoder means of the training images coloured by digit;
decoder means on an equally spaced 20 x 20 lattice (Kingma and Welling's Fig. 4b) whose bounds are read off
that scatter (quantiles of the encoder means, drawn on the scatter); 3 interpolations.

Method: MLP encoder and decoder with one hidden layer of 500 tanh units, a 2-D latent, Bernoulli
pixels (binarized at 0.5, ``data.binarize``), the first 10,000 images of the official training file and
the 10,000 test images, batches of 100, Adam, the Monte Carlo ELBO without the closed-form KL
(``mlp_vae.MLPVAE`` with ``closed_form_kl`` off). log p(x) = log of the sum over grid points of p(x, z_g) dA
(``prob.grid_log_integral``, midpoint rule) on [-6, 6]^2 with spacing 0.1 (the course's [-4, 4]^2 cuts
off posteriors of this model: its encoder means reach beyond 4), checked against a grid of half the
spacing and by the posterior mass in the grid's outermost ring; importance sampling draws from
q(z|x) (``prob.log_weights``, ``log_mean_exp``).
Rerun: ``python reproduce.py --only tor_vae``
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from experiments.lib import latent2d, mlp_vae
from experiments.lib.contract import Context, DigitGrid, Result
from experiments.lib.data import binarize, pick_per_digit
from experiments.lib.plotting import MARKERS, new_figure
from experiments.lib.prob import bernoulli_sample, gaussian_sample, grid_log_integral, log_mean_exp, log_weights

SECTION = "tor_vae"
TITLE = "Toronto CSC412: the 2-D Bernoulli VAE and log p(x) on a grid"
REQUIRES: tuple[str, ...] = ()
COURSE_EPOCHS = 200  # the course's "Train for ~200 epochs" (its section 2.5)


@dataclass(frozen=True)
class Config:
    latent_dim: int = 2  # d (Kingma and Welling's Fig. 4 and the course: 2)
    hidden: tuple[int, ...] = (500,)  # hidden units of q(z|x), and of p(x|z), which mirrors it (Appendix C: 500)
    activation: str = "tanh"  # hidden nonlinearity (Appendix C: tanh)
    closed_form_kl: bool = False  # the course asks for the Monte Carlo ELBO without the closed-form KL
    n_train: int = 10000  # first images of the official training file (the course: 10,000)
    n_test: int = 10000  # test images evaluated (the course: 10,000)
    batch_size: int = 100  # images per Adam step (the course: 100)
    epochs: int = COURSE_EPOCHS  # passes over the training images
    lr: float = 1e-3  # Adam learning rate
    eval_samples: int = 10  # draws of q per image for the final training and test ELBO
    n_check: int = 20  # test images (the first ones) for grid, ELBO and importance sampling
    grid_extent: float = 6.0  # the grid covers [-extent, extent]^2 (the course: 4, too small for this encoder's means)
    grid_step: float = 0.1  # its spacing (the course: 0.1); a grid of half the spacing checks it
    check_elbo_samples: int = 1000  # draws of q for the ELBO of each check image
    is_samples: tuple[int, ...] = (1, 10, 100, 1000, 10000)  # importance samples K (nested prefixes of one draw)
    lattice: int = 20  # the decoder lattice is lattice x lattice, equally spaced (the course and Fig. 4b: 20)
    lattice_quantile: float = 0.005  # its bounds per axis: these quantiles (q, 1 - q) of the training images' encoder means
    interpolation_pairs: tuple[tuple[int, int], ...] = ((1, 7), (3, 8), (4, 9))  # digits interpolated between
    interpolation_steps: int = 10  # images along each interpolation
    stream: int = 10  # this section's generators are seeded with seed + stream + k


SMOKE = Config(n_train=1000, n_test=500, epochs=2, eval_samples=2, n_check=4, grid_step=0.2,
               check_elbo_samples=50, is_samples=(1, 10, 100), lattice=5, interpolation_steps=5)

HEADLINE = ("test_elbo", "test ELBO (nats)")
TOLERANCES = {"test_elbo": (1e-4, 3.0), "train_elbo": (1e-4, 3.0), "test_logp_grid": (1e-4, 3.0)}
CHOICES = ("check.is_worst",)  # which image importance sampling fits worst: another machine may pick another


def check_images(cfg: Config, ctx: Context) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n_check test images, binarized (n, 784), and their digits: shared with tor_posterior and tor_grad."""
    return binarize(ctx.data.test.x[:cfg.n_check]).flatten(1), ctx.data.test.y[:cfg.n_check]


@torch.no_grad()
def grid_log_p(cfg: Config, model, x: torch.Tensor, step: float, chunk: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(x) per image (N,) on the grid of spacing ``step``, and the posterior mass in the grid's
    outermost ring (N,): near 0 when [-extent, extent]^2 holds the posterior."""
    _, points = latent2d.grid(cfg.grid_extent, step)
    edge = (points.abs() > cfg.grid_extent - step / 2).any(1)
    log_p, edge_mass = [], []
    for i in range(0, len(x), chunk):
        log_joint = latent2d.grid_log_joint(model, x[i:i + chunk], points)  # (n, G)
        log_p.append(grid_log_integral(log_joint, step ** 2))
        edge_mass.append((log_joint[:, edge].logsumexp(1) + math.log(step ** 2) - log_p[-1]).exp())
    return torch.cat(log_p), torch.cat(edge_mass)


@torch.no_grad()
def integration_check(cfg: Config, model, x: torch.Tensor, seed: int) -> dict:
    """Grid log p(x), the normalisation of p(z|x), the ELBO and importance sampling for images x (n, 784)."""
    _, points = latent2d.grid(cfg.grid_extent, cfg.grid_step)
    log_joint = latent2d.grid_log_joint(model, x, points)  # (n, G)
    log_p = grid_log_integral(log_joint, cfg.grid_step ** 2)  # (n,)
    log_post = log_joint - log_p.unsqueeze(1)  # log p(z_g | x), (n, G)
    log_p_fine, edge_mass = grid_log_p(cfg, model, x, cfg.grid_step / 2)
    mean, logvar = model.encode(x)
    gen = torch.Generator().manual_seed(seed)
    log_w_elbo = log_weights(mean, logvar, model.log_joint(x), cfg.check_elbo_samples, 500, gen)  # (S, n)
    elbo = log_w_elbo.mean(0)
    log_w = log_weights(mean, logvar, model.log_joint(x), max(cfg.is_samples), 500, gen)  # (K, n)
    is_estimates = {str(k): log_mean_exp(log_w[:k]).tolist() for k in cfg.is_samples}
    return {
        "log_p_grid": log_p.tolist(),
        "log_p_grid_fine": log_p_fine.tolist(),
        "grid_vs_fine_max_abs": (log_p - log_p_fine).abs().max().item(),
        # log of the integral of the normalised posterior on its own grid (the course's log 1 = 0 check)
        "posterior_log_integral": grid_log_integral(log_post, cfg.grid_step ** 2).tolist(),
        # the same posterior integrated on the finer grid: log p_fine(x) - log p(x)
        "posterior_log_integral_fine": (log_p_fine - log_p).tolist(),
        "edge_mass_max": edge_mass.max().item(),
        "elbo": elbo.tolist(),
        "elbo_se": (log_w_elbo.std(0) / math.sqrt(len(log_w_elbo))).tolist(),
        "elbo_below_grid": bool((elbo < log_p).all()),
        "gap_mean": (log_p - elbo).mean().item(),
        "is": is_estimates,
        "is_abs_error_mean": {k: (torch.tensor(v) - log_p).abs().mean().item() for k, v in is_estimates.items()},
        # the true median (the mean of the two middle values for an even count; torch's median() takes the lower one)
        "is_abs_error_median": {k: (torch.tensor(v) - log_p).abs().quantile(0.5).item() for k, v in is_estimates.items()},
        # images whose largest-K estimate is within 0.1 nats of the grid, and the one farthest from it
        "is_within_0_1": int(((torch.tensor(is_estimates[str(max(cfg.is_samples))]) - log_p).abs() < 0.1).sum()),
        "is_worst": int((torch.tensor(is_estimates[str(max(cfg.is_samples))]) - log_p).abs().argmax()),
        "posterior_sd_mean": logvar.mul(0.5).exp().mean().item(),
    }


def loglik_figure(check: dict, ks: tuple[int, ...]):
    """Left: ELBO and importance sampling minus the grid value per image; right: |IS - grid| against K."""
    fig, (a, b) = new_figure(2, 6.4, 2.3)
    grid_lp = np.array(check["log_p_grid"])
    idx = np.arange(1, len(grid_lp) + 1)
    a.axhline(0, color="0.3", linewidth=0.6)
    a.plot(idx, np.array(check["elbo"]) - grid_lp, MARKERS[0], label="ELBO")
    a.plot(idx, np.array(check["is"][str(ks[-1])]) - grid_lp, MARKERS[1], label=f"IS, K = {ks[-1]}")
    a.set_xlabel("test image")
    a.set_ylabel("estimate - grid log p(x) (nats)")
    a.legend(frameon=False)
    errors = np.abs(np.array([check["is"][str(k)] for k in ks]) - grid_lp)  # (len(ks), n)
    for column in errors.T:
        b.loglog(ks, column, color="0.75", linewidth=0.5)
    b.loglog(ks, errors.mean(1), marker=MARKERS[1], color="C1", label="mean over images")
    b.loglog(ks, np.median(errors, 1), marker=MARKERS[2], linestyle="--", color="C2", label="median over images")
    b.set_xlabel("importance samples K")
    b.set_ylabel("|IS - grid log p(x)| (nats)")
    b.legend(frameon=False)
    for ax in (a, b):
        ax.grid(alpha=0.3, linewidth=0.5)
    return fig


@torch.no_grad()
def lattice_bounds(cfg: Config, codes: torch.Tensor, labels: torch.Tensor) -> dict:
    """The lattice's bounds from the scatter of encoder means (N, 2), as the course asks: the quantiles q and 1 - q of
    each coordinate; the share of all means, and of each digit's, inside them."""
    low, high = codes.quantile(cfg.lattice_quantile, 0), codes.quantile(1 - cfg.lattice_quantile, 0)  # (2,) each
    inside = ((codes >= low) & (codes <= high)).all(1)
    return {"low": low.tolist(), "high": high.tolist(), "inside": inside.float().mean().item(),
            "inside_per_digit": [inside[labels == d].float().mean().item() for d in range(10)],
            "means_min": codes.min(0).values.tolist(), "means_max": codes.max(0).values.tolist()}


@torch.no_grad()
def image_figures(cfg: Config, ctx: Context, model, x_test: torch.Tensor, y_test: torch.Tensor, bounds: dict) -> dict:
    """The samples (10 x 2), reconstructions (10 x 3), lattice and interpolation grids."""
    gen = torch.Generator().manual_seed(ctx.seed + cfg.stream + 2)
    z = torch.randn(10, cfg.latent_dim, generator=gen)
    means = model.decoder_mean(z)  # (10, 784)
    # the course's 10 x 2 and 10 x 3 figures, drawn with the ten as columns so that they fit the page
    samples = DigitGrid(np.stack([means.reshape(10, 28, 28).numpy(), bernoulli_sample(means, gen).reshape(10, 28, 28).numpy()]),
                        ("p(x|z)", "x ~ p(x|z)"), tuple(f"z{i + 1}" for i in range(10)))
    shown = pick_per_digit(y_test, 1, gen)[:, 0]  # one test image of each digit
    x = x_test[shown]
    mean, logvar = model.encode(x)
    recon_means = model.decoder_mean(gaussian_sample(mean, logvar, gen))
    recon = DigitGrid(np.stack([t.reshape(10, 28, 28).numpy() for t in (x, recon_means, bernoulli_sample(recon_means, gen))]),
                      ("data x", "p(x|z), z ~ q", "x ~ p(x|z)"), tuple(f"digit {d}" for d in range(10)))
    # the course's equally spaced lattice, within the bounds read off the scatter of encoder means
    z1 = torch.linspace(bounds["low"][0], bounds["high"][0], cfg.lattice)
    z2 = torch.linspace(bounds["low"][1], bounds["high"][1], cfg.lattice).flip(0)  # z2 decreases down the rows
    lattice_z = torch.stack(torch.meshgrid(z2, z1, indexing="ij")[::-1], -1)  # (rows, cols, 2) = (z1, z2)
    lattice = DigitGrid(latent2d.decode_means(model, lattice_z), tuple(f"{v:.2f}" for v in z2.tolist()),
                        tuple(f"{v:.2f}" for v in z1.tolist()))
    ends = torch.tensor(cfg.interpolation_pairs)  # (P, 2) digits
    codes = latent2d.encode_means(model, x_test[shown])  # (10, d), row = digit
    path = latent2d.interpolate(codes[ends[:, 0]], codes[ends[:, 1]], cfg.interpolation_steps)
    interp = DigitGrid(latent2d.decode_means(model, path), tuple(f"{a} to {b}" for a, b in cfg.interpolation_pairs),
                       tuple(f"t={t:.2f}" for t in torch.linspace(0, 1, cfg.interpolation_steps).tolist()))
    return {"samples": samples, "recon": recon, "lattice": lattice, "interpolations": interp}


def run(cfg: Config, ctx: Context) -> Result:
    full = ctx.data.full_train
    x_train = binarize(full.x[:cfg.n_train]).flatten(1).to(ctx.device)
    x_test, y_test = binarize(ctx.data.test.x[:cfg.n_test]).flatten(1).to(ctx.device), ctx.data.test.y[:cfg.n_test]
    model, history, epoch_s = latent2d.train(cfg, ctx, x_train, x_test[:2000])
    x_train, x_test = x_train.cpu(), x_test.cpu()
    gen = torch.Generator().manual_seed(ctx.seed + cfg.stream)
    train_elbo = model.log_px(x_train, cfg.eval_samples, gen)["elbo"]
    test_elbo = model.log_px(x_test, cfg.eval_samples, gen)["elbo"]
    test_logp, test_edge = grid_log_p(cfg, model, x_test, cfg.grid_step)
    x_check, y_check = check_images(cfg, ctx)
    with torch.no_grad():
        check = integration_check(cfg, model, x_check, ctx.seed + cfg.stream + 1)
        train_codes = latent2d.encode_means(model, x_train)
        test_sd = model.encode(x_test)[1].mul(0.5).exp()  # (N, d) the encoder's sigma
    bounds = lattice_bounds(cfg, train_codes, full.y[:cfg.n_train])
    metrics = {
        "history": history,
        "epochs": cfg.epochs, "course_epochs": COURSE_EPOCHS,
        **dict(zip(("train_elbo", "train_elbo_se"), latent2d.mean_se(train_elbo))),
        **dict(zip(("test_elbo", "test_elbo_se"), latent2d.mean_se(test_elbo))),
        "test_logp_grid": test_logp.mean().item(),
        "test_gap_mean": (test_logp - test_elbo).mean().item(),
        "test_edge_mass_max": test_edge.max().item(),
        "test_edge_mass_over_1e-3": int((test_edge > 1e-3).sum()),
        "n_train": len(x_train), "n_test": len(x_test),
        "check": check, "check_digits": y_check.tolist(), "lattice_bounds": bounds,
        # the encoder's sigma over the test images (why it outputs log sigma^2: a positive number spanning orders of magnitude)
        "sigma_min": test_sd.min().item(), "sigma_max": test_sd.max().item(), "sigma_median": test_sd.quantile(0.5).item(),
        "timing": {"train_s": sum(epoch_s), "epoch_s": epoch_s},
    }
    figures = {"curves": latent2d.curves_figure(history), "loglik": loglik_figure(check, cfg.is_samples),
               "latent": latent2d.latent_figure(train_codes, full.y[:cfg.n_train], "encoder means, training images", bounds),
               **image_figures(cfg, ctx, model, x_test, y_test, bounds)}
    return Result(metrics, figures, mlp_vae.checkpoint(model))
