# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""Training and analysis helpers of the companion's 2-D Bernoulli VAEs (Toronto CSC412/2506 and Stanford STATS305C).

The model is ``mlp_vae.MLPVAE`` with p(z) = N(0, I) in d = 2 dimensions and Bernoulli pixels,
p(x|z) = prod_j Bernoulli(x_j; sigmoid(f_j(z))) over the 784 binarized pixels. With a 2-D latent,
log p(x) = log of the integral of p(x, z) over z can be computed on a grid; this module holds that
grid, the encoder means and decoded lattices, interpolation, SVI without an encoder, and figures.
"""
from __future__ import annotations

import matplotlib
import numpy as np
import torch

from experiments.lib.mlp_vae import MLPVAE, Arch, Training, fit
from experiments.lib.plotting import new_figure, plot_curves
from experiments.lib.prob import bernoulli_log_prob_pairs, diag_gaussian_log_prob, reparameterize
from experiments.lib.runtime import map_batches

DIGIT_COLOURS = "tab10"


def train(cfg, ctx, x_train: torch.Tensor, x_eval: torch.Tensor) -> tuple[MLPVAE, dict, list]:
    """The Bernoulli MLP VAE of a section's Config (latent_dim, hidden, activation, closed_form_kl,
    epochs, batch_size, lr) fitted by ``mlp_vae.fit`` on x_train (N, 784), with the ELBO of x_eval (one
    fixed draw per image) after every epoch. Returns the model (CPU, eval mode), the history
    {train_elbo_running, eval_elbo} and the seconds of each epoch (kept apart: they differ from run to
    run, the history does not)."""
    model = MLPVAE(Arch(latent_dim=cfg.latent_dim, hidden=cfg.hidden, activation=cfg.activation,
                        closed_form_kl=cfg.closed_form_kl)).to(ctx.device)
    h = fit(model, x_train, x_eval, Training(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr), ctx, ctx.seed)
    history = {"train_elbo_running": h["train_elbo"], "eval_elbo": [v["elbo"] for v in h["val"]]}
    return model.cpu().eval(), history, h["epoch_s"]


def curves_figure(history: dict):
    """The ELBO per epoch of ``fit``: the running training average and the held-out images."""
    fig, (ax,) = new_figure(1, 3.2, 2.0)
    plot_curves(ax, {"training (running)": history["train_elbo_running"], "test (first 2,000)": history["eval_elbo"]}, "ELBO (nats)")
    return fig


def mean_se(values: torch.Tensor) -> tuple[float, float]:
    """The mean of per-image values and its standard error."""
    return values.mean().item(), (values.std() / len(values) ** 0.5).item()


# ---------------------------------------------------------------- the latent plane
def grid(extent: float, step: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The axis -extent, ..., extent in steps of ``step`` (A,) and the grid of its pairs (A^2, 2), z_1 major."""
    n = int(round(2 * extent / step)) + 1
    axis = torch.linspace(-extent, extent, n)
    return axis, torch.cartesian_prod(axis, axis)


@torch.no_grad()
def grid_log_joint(model: MLPVAE, x: torch.Tensor, points: torch.Tensor, pixels: slice = slice(None),
                   chunk: int = 500) -> torch.Tensor:
    """log p(x_n, z_g) = log p(z_g) + log p(x_n | z_g) for every image (N, 784) and grid point (G, 2): (N, G)
    (Bernoulli pixels)."""
    logits = map_batches(model.decoder, points, batch_size=4096)[:, pixels]  # (G, P)
    prior = model.prior_log_prob(points)  # (G,)
    return torch.cat([prior + bernoulli_log_prob_pairs(x[i:i + chunk, pixels], logits) for i in range(0, len(x), chunk)])


@torch.no_grad()
def encode_means(model: MLPVAE, x: torch.Tensor) -> torch.Tensor:
    return map_batches(lambda xb: model.encode(xb)[0], x, batch_size=1000)


def scatter_by_digit(ax, z: np.ndarray, labels: np.ndarray, title: str) -> None:
    """Latent points coloured by their digit, with a legend; rasterized so that 10,000 points stay light."""
    cmap = matplotlib.colormaps[DIGIT_COLOURS]
    for digit in range(10):
        pts = z[labels == digit]
        ax.scatter(pts[:, 0], pts[:, 1], s=0.6, color=cmap(digit), label=str(digit), rasterized=True, linewidths=0)
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_title(title)
    ax.set_aspect("equal")
    ax.legend(markerscale=6, frameon=False, ncol=1, loc="center left", bbox_to_anchor=(1.0, 0.5), handletextpad=0.1)


def latent_figure(z: torch.Tensor, labels: torch.Tensor, title: str, box: dict | None = None):
    """The scatter of ``scatter_by_digit``; with ``box`` ({"low": (2,), "high": (2,)}) its rectangle drawn over it."""
    fig, (ax,) = new_figure(1, 3.4, 2.9)
    scatter_by_digit(ax, z.numpy(), labels.numpy(), title)
    if box is not None:
        (x0, y0), (x1, y1) = box["low"], box["high"]
        ax.plot([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0], color="black", linewidth=0.6, linestyle="--")
    return fig


@torch.no_grad()
def decode_means(model: MLPVAE, z: torch.Tensor) -> np.ndarray:
    """Bernoulli means sigmoid(f(z)) of latents (..., d) as images (..., 28, 28) for DigitGrid."""
    return model.decoder_mean(z).reshape(*z.shape[:-1], 28, 28).numpy()


def interpolate(a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
    """Latents on the segment from a to b (P, d) at ``steps`` equally spaced points: (P, steps, d)."""
    t = torch.linspace(0, 1, steps).view(1, -1, 1)
    return (1 - t) * a.unsqueeze(1) + t * b.unsqueeze(1)


def svi(model: MLPVAE, x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, steps: int, lr: float, samples: int,
        generator: torch.Generator, pixels: slice = slice(None), isotropic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Stochastic variational inference without an encoder: a Gaussian q_b = N(m_b, diag exp(r_b)) per
    image x_b (B, 784), started at (mean, logvar) (B, d), fitted by Adam on the reparameterised Monte
    Carlo ELBO (``samples`` draws a step) of the pixels ``pixels``. The decoder stays fixed. ``isotropic``:
    q_b = N(m_b, exp(r_b) I), one log-variance per image (started at the mean of ``logvar``'s)."""
    start = logvar.mean(-1, keepdim=True) if isotropic else logvar  # (B, 1) or (B, d)
    m, r = mean.detach().clone().requires_grad_(True), start.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([m, r], lr=lr)
    joint = model.log_joint(x, pixels)
    for _ in range(steps):
        eps = torch.randn((samples, *m.shape), generator=generator)  # (S, B, d)
        z = reparameterize(m, r.expand_as(m), eps)
        # the images are independent, so the sum over them is maximised image by image
        loss = -(joint(z) - diag_gaussian_log_prob(z, m, r.expand_as(m))).mean(0).sum()
        m.grad, r.grad = torch.autograd.grad(loss, [m, r])  # the decoder's weights get no gradient
        opt.step()
    return m.detach(), r.detach().expand_as(m).clone()
