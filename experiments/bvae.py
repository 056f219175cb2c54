"""The fully connected Bernoulli VAE of the companion's courses (peers.md): training, ELBO, latent grids.

Model: p(z) = N(0, I) in d = 2 dimensions, p(x|z) = prod_j Bernoulli(x_j; sigmoid(l_j(z))) over the
784 binarized pixels, q(z|x) = N(mu(x), diag exp(r(x))) (``models.MLPEncoder``, ``MLPDecoder``).
ELBO (Kingma and Welling 2013, Eq. 3 without, and Eq. 10 with, the closed-form KL):
    L(x) = E_q[log p(z) + log p(x|z) - log q(z|x)] = E_q[log p(x|z)] - KL(q(z|x) || p(z)).
With a 2-D latent, log p(x) = log of the integral of p(x, z) over z can be computed on a grid.
"""
from __future__ import annotations

import time
from typing import Callable

import matplotlib
import numpy as np
import torch

from .data import batches
from .models import MLPDecoder, MLPEncoder
from .plotting import new_figure, plot_curves
from .prob import (bernoulli_log_prob, bernoulli_log_prob_pairs, diag_gaussian_log_prob, kl_to_standard_normal,
                   log_weights, reparameterize, standard_normal_log_prob)
from .runtime import map_batches

DIGIT_COLOURS = "tab10"


def arch(cfg) -> dict:
    """What ``build`` needs, as stored in a checkpoint."""
    return {"encoder": list(cfg.encoder_hidden), "decoder": list(cfg.decoder_hidden), "latent_dim": cfg.latent_dim,
            "activation": cfg.activation}


def build(arch_: dict, device: torch.device) -> tuple[MLPEncoder, MLPDecoder]:
    return (MLPEncoder(tuple(arch_["encoder"]), arch_["latent_dim"], arch_["activation"]).to(device),
            MLPDecoder(tuple(arch_["decoder"]), arch_["latent_dim"], arch_["activation"]).to(device))


def restore(state: dict, device: torch.device) -> tuple[MLPEncoder, MLPDecoder]:
    """Encoder and decoder from a checkpoint's ``arch``, ``encoder`` and ``decoder``, in eval mode."""
    enc, dec = build(state["arch"], device)
    enc.load_state_dict(state["encoder"])
    dec.load_state_dict(state["decoder"])
    return enc.eval(), dec.eval()


def checkpoint(cfg, enc, dec) -> dict:
    return {"arch": arch(cfg), "encoder": enc.state_dict(), "decoder": dec.state_dict()}


def log_joint(dec, x: torch.Tensor, pixels: slice = slice(None)) -> Callable[[torch.Tensor], torch.Tensor]:
    """z (m, B, d) -> log p(z) + log p(x_b | z_mb) (m, B) for images x (B, 784); ``pixels`` restricts the
    likelihood to some pixels (the top half: slice(0, 392))."""
    def fn(z):
        logits = dec(z.reshape(-1, z.shape[-1])).reshape(*z.shape[:2], -1)  # (m, B, 784)
        return standard_normal_log_prob(z) + bernoulli_log_prob(x[:, pixels], logits[..., pixels])
    return fn


def negative_elbo_batch(enc, dec, x: torch.Tensor, closed_form_kl: bool) -> torch.Tensor:
    """-ELBO per image from one z ~ q each, (B,): Monte Carlo log p(z) + log p(x|z) - log q(z|x), or
    log p(x|z) minus the closed-form KL."""
    mean, logvar = enc(x)  # (B, d)
    z = reparameterize(mean, logvar)  # (B, d)
    if closed_form_kl:
        return -bernoulli_log_prob(x, dec(z)) + kl_to_standard_normal(mean, logvar).sum(-1)
    return -(log_joint(dec, x)(z.unsqueeze(0)).squeeze(0) - diag_gaussian_log_prob(z, mean, logvar))


@torch.no_grad()
def elbo(enc, dec, x: torch.Tensor, samples: int, generator: torch.Generator, batch_size: int = 500) -> torch.Tensor:
    """Monte Carlo ELBO per image (N,) from ``samples`` draws of q each (no closed-form KL)."""
    out = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size]
        mean, logvar = enc(xb)
        out.append(log_weights(mean, logvar, log_joint(dec, xb), samples, samples, generator).mean(0))
    return torch.cat(out)


def fit(cfg, ctx, x_train: torch.Tensor, x_eval: torch.Tensor):
    """Adam on the negative ELBO over x_train (N, 784) in shuffled batches for cfg.epochs; after every
    epoch the ELBO of x_eval (one fixed draw per image). Returns encoder, decoder, the history and the
    seconds of each epoch (kept apart: they differ from run to run, the history does not)."""
    enc, dec = build(arch(cfg), ctx.device)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=cfg.lr)
    generator = torch.Generator().manual_seed(ctx.seed)
    history: dict[str, list] = {"train_elbo_running": [], "eval_elbo": []}
    epoch_s = []
    for epoch in range(1, cfg.epochs + 1):
        start, total = time.perf_counter(), 0.0
        order = batches(len(x_train), cfg.batch_size, generator)
        enc.train(), dec.train()
        for i, idx in enumerate(order, 1):
            loss = negative_elbo_batch(enc, dec, x_train[idx], cfg.closed_form_kl).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            ctx.progress.update(epoch, cfg.epochs, i, len(order), loss.item())
        enc.eval(), dec.eval()
        history["train_elbo_running"].append(-total / len(x_train))
        history["eval_elbo"].append(elbo(enc, dec, x_eval, 1, torch.Generator().manual_seed(ctx.seed + 1)).mean().item())
        epoch_s.append(time.perf_counter() - start)
        ctx.progress.note(f"epoch {epoch}/{cfg.epochs}: training ELBO {history['train_elbo_running'][-1]:.1f}, "
                          f"held-out ELBO {history['eval_elbo'][-1]:.1f} nats ({epoch_s[-1]:.1f}s)")
    return enc, dec, history, epoch_s


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
def grid_log_joint(dec, x: torch.Tensor, points: torch.Tensor, pixels: slice = slice(None), chunk: int = 500) -> torch.Tensor:
    """log p(x_n, z_g) = log p(z_g) + log p(x_n | z_g) for every image (N, 784) and grid point (G, 2): (N, G)."""
    logits = map_batches(dec, points, batch_size=4096)[:, pixels]  # (G, P)
    prior = standard_normal_log_prob(points)  # (G,)
    return torch.cat([prior + bernoulli_log_prob_pairs(x[i:i + chunk, pixels], logits) for i in range(0, len(x), chunk)])


@torch.no_grad()
def encode_means(enc, x: torch.Tensor) -> torch.Tensor:
    return map_batches(lambda xb: enc(xb)[0], x, batch_size=1000)


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


def latent_figure(z: torch.Tensor, labels: torch.Tensor, title: str):
    fig, (ax,) = new_figure(1, 3.4, 2.9)
    scatter_by_digit(ax, z.numpy(), labels.numpy(), title)
    return fig


@torch.no_grad()
def decode_means(dec, z: torch.Tensor) -> np.ndarray:
    """Bernoulli means sigmoid(l(z)) of latents (..., d) as images (..., 28, 28) for DigitGrid."""
    return torch.sigmoid(dec(z.reshape(-1, z.shape[-1]))).reshape(*z.shape[:-1], 28, 28).numpy()


def interpolate(a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
    """Latents on the segment from a to b (P, d) at ``steps`` equally spaced points: (P, steps, d)."""
    t = torch.linspace(0, 1, steps).view(1, -1, 1)
    return (1 - t) * a.unsqueeze(1) + t * b.unsqueeze(1)


def svi(dec, x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, steps: int, lr: float, samples: int,
        generator: torch.Generator, pixels: slice = slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
    """Stochastic variational inference without an encoder: a Gaussian q_b = N(m_b, diag exp(r_b)) per
    image x_b (B, 784), started at (mean, logvar) (B, d), fitted by Adam on the reparameterised Monte
    Carlo ELBO (``samples`` draws a step) of the pixels ``pixels``. The decoder stays fixed."""
    m, r = mean.detach().clone().requires_grad_(True), logvar.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([m, r], lr=lr)
    joint = log_joint(dec, x, pixels)
    for _ in range(steps):
        eps = torch.randn((samples, *m.shape), generator=generator)  # (S, B, d)
        z = reparameterize(m, r, eps)
        # the images are independent, so the sum over them is maximised image by image
        loss = -(joint(z) - diag_gaussian_log_prob(z, m, r)).mean(0).sum()
        m.grad, r.grad = torch.autograd.grad(loss, [m, r])  # the decoder's weights get no gradient
        opt.step()
    return m.detach(), r.detach()
