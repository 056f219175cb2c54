# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""Q2 of the brief (section 3.4): sampling from the VAE of Q1 as it trains.

Question: sample 10 latents from the prior and pass them through the generators of epochs 1, 5,
10, 20 and 30; plot the generations (no explanation needed).

Method: ten z ~ N(0, I) drawn once from the seed (``vae.prior_latents``), decoded by each saved
generator of Q1. We show decoder means G(z): a sample of p(x|z) = N(G(z), sigma_p^2 I) adds independent noise of standard
deviation sigma_p = 0.4 (a fifth of the pixel range) to every pixel, which hides the digit.

Rerun: ``python reproduce.py --only q2`` (runs Q1 first when its checkpoint is missing or stale)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from experiments.lib import vae
from experiments.lib.contract import Context, DigitGrid, Result
from experiments.lib.plotting import to_unit_range

SECTION = "q2"
TITLE = "Q2: sampling from the VAE"
REQUIRES = ("q1",)


@dataclass(frozen=True)
class Config:
    samples: int = 10  # latents drawn from the prior p(z) = N(0, I)


SMOKE = Config()

HEADLINE = ("ink_change_last", "mean |change| of samples, epoch 20 to 30")
TOLERANCES = {"ink_change_last": (1e-6, 0.02)}


def pixel_diversity(images: torch.Tensor) -> float:
    """Mean |difference| per pixel over all pairs of the N images (N, ...) in [0, 1]: 0 for copies of one image."""
    flat = images.reshape(len(images), -1).float()
    return (torch.cdist(flat, flat, p=1).sum() / (len(flat) * (len(flat) - 1) * flat.shape[1])).item()


@torch.no_grad()
def run(cfg: Config, ctx: Context) -> Result:
    q1 = ctx.require("q1")
    z = vae.prior_latents(cfg.samples, q1["arch"]["latent_dim"], ctx.seed).to(ctx.device)
    epochs = sorted(map(int, q1["decoders"]))
    rows = [vae.restore_decoder(q1["arch"], q1["decoders"][str(e)], ctx.device)(z).cpu() for e in epochs]
    images = to_unit_range(torch.stack(rows)[:, :, 0], *q1["arch"]["pixel_range"])  # (epochs, n, 28, 28)
    change = [float(abs(images[i + 1] - images[i]).mean()) for i in range(len(epochs) - 1)]
    per_epoch = [c / (epochs[i + 1] - epochs[i]) for i, c in enumerate(change)]  # snapshots are unevenly spaced
    metrics = {
        "epochs": epochs,
        "z_norms": z.norm(dim=1).tolist(),
        "ink_change": change,
        "ink_change_last": change[-1] if change else 0.0,
        "ink_change_per_epoch": per_epoch,
        "diversity": [pixel_diversity(torch.from_numpy(im)) for im in images],
    }
    grid = DigitGrid(images, tuple(f"epoch {e}" for e in epochs), tuple(f"z{i + 1}" for i in range(cfg.samples)))
    return Result(metrics, {"samples": grid}, {"z": z.cpu(), "images": torch.from_numpy(images)})
