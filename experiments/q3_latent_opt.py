"""Q3 of the brief (section 3.4): latent optimization instead of an amortized encoder.

Question: train a generator by variational inference with free q vectors, initialised from
N(0, I); show reconstructions of ten training images (one per digit) at epochs 1, 5, 10, 20 and 30
and compare with Q1; which method proposed better q vectors? Sample ten prior latents through the
new generator and compare with Q2; was the initialisation enough to establish a good prior?

Method: Q1's generator architecture, a fresh one, and for each of the N training images its own
mu_i and r_i = log sigma_i^2 as rows of two sparse embeddings (mu_i ~ N(0, I), and r_i = log s^2
with s ~ N(0, I), as section 3.2 says). The loss is Q1's (Eq. 6, same aggregation). Adam with
learning rate 1e-3 moves the generator; SparseAdam with 1e-2 moves only the rows of the images in
the batch, and its moment estimates of the other rows stay untouched, so an image's q vector
changes exactly once per epoch. Answered from numbers: the reconstruction error G(mu_i) over the
whole training set at each snapshot for both methods, the training -ELBO, and the mean and
covariance of the learned mu_i against N(0, I) with the KL of their moment-matched Gaussian.

Rerun: ``python reproduce.py --only q3`` (needs Q1 and Q2; they run first when stale)
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import vae
from .contract import Context, DigitGrid, Result
from .data import batches, to_float
from .models import Decoder
from .plotting import to_unit_range
from .prob import brief_loss, isotropic_gaussian_log_prob, kl_to_standard_normal, reparameterize
from .runtime import map_batches

SECTION = "q3"
TITLE = "Q3: latent optimization"
REQUIRES = ("q1", "q2")


@dataclass(frozen=True)
class Config:
    epochs: int = 30  # passes over the training subset, as in Q1
    batch_size: int = 128  # images per step, as in Q1
    lr_decoder: float = 1e-3  # Adam for the generator (section 3.2)
    lr_latents: float = 1e-2  # SparseAdam for the q vectors: 10x, each row moves once per epoch (section 3.2)
    snapshot_epochs: tuple[int, ...] = (1, 5, 10, 20, 30)  # epochs whose reconstructions and samples are kept
    eval_batch: int = 1000  # images per forward pass when evaluating
    stream: int = 3  # the q vectors are initialised from the generator seeded with seed + stream


SMOKE = Config(epochs=2, batch_size=64, snapshot_epochs=(1, 2))

HEADLINE = ("recon_error", "training reconstruction MSE, final epoch")
TOLERANCES = {"recon_error": (1e-6, 0.01), "latent_stats.q3.kl_to_prior": (1e-3, 25.0)}


class LatentTable(nn.Module):
    """mu_i and r_i = log sigma_i^2 of every training image, as two sparse-gradient embeddings."""

    def __init__(self, n: int, dim: int, generator: torch.Generator):
        super().__init__()
        self.mean = nn.Embedding(n, dim, sparse=True)
        self.logvar = nn.Embedding(n, dim, sparse=True)
        with torch.no_grad():
            self.mean.weight.copy_(torch.randn(n, dim, generator=generator))  # mu_i ~ N(0, I)
            # r = log s^2 with s ~ N(0, I) (section 3.2)
            self.logvar.weight.copy_(torch.log(torch.randn(n, dim, generator=generator) ** 2))

    def forward(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mean(idx), self.logvar(idx)  # (B, d) each


def make_optimizers(dec: nn.Module, table: LatentTable, cfg: Config):
    """Adam for the generator; SparseAdam, which updates only rows with a gradient, for the latents."""
    return (torch.optim.Adam(dec.parameters(), lr=cfg.lr_decoder),
            torch.optim.SparseAdam(list(table.parameters()), lr=cfg.lr_latents))


def train_epoch(dec, table, optimizers, x, cfg: Config, kl_weight: float, generator, report) -> float:
    """One pass in shuffled batches with Eq. 6's loss; returns the mean loss."""
    dec.train()
    order = batches(len(x), cfg.batch_size, generator)
    total = 0.0
    for i, idx in enumerate(order, 1):
        idx = idx.to(x.device)
        mean, logvar = table(idx)
        x_mean = dec(reparameterize(mean, logvar))  # (B, 1, 28, 28)
        mse, kl = brief_loss(x[idx].flatten(1), x_mean.flatten(1), mean, logvar)
        loss = mse + kl_weight * kl
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in optimizers:
            opt.step()
        total += loss.item() * len(idx)
        report(i, len(order), loss.item())
    return total / len(x)


@torch.no_grad()
def evaluate(dec: Decoder, table: LatentTable, x: torch.Tensor, sigma_p: float, seed: int, batch_size: int) -> dict:
    """Training-set -ELBO (one z per image, noise fixed by ``seed``), KL and reconstruction error G(mu_i)."""
    dec.eval()
    mean, logvar = table.mean.weight, table.logvar.weight  # (N, d)
    eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(seed)).to(x.device)
    x_mean = map_batches(dec, reparameterize(mean, logvar, eps), batch_size=batch_size).flatten(1)
    kl = kl_to_standard_normal(mean, logvar).sum(1)  # (N,)
    neg_elbo = -isotropic_gaussian_log_prob(x.flatten(1), x_mean, sigma_p) + kl
    return {"neg_elbo": neg_elbo.mean().item(), "kl_nats": kl.mean().item(),
            "recon_error": vae.recon_error(dec, mean, x, batch_size)}


def gaussian_fit(codes: torch.Tensor) -> dict:
    """Mean and covariance of codes (N, d) against N(0, I), and KL(N(m, C) || N(0, I)) in nats."""
    m, c = codes.mean(0), torch.cov(codes.T)
    eig = torch.linalg.eigvalsh(c)
    d = codes.shape[1]
    # KL(N(m, C) || N(0, I)) = 1/2 (tr C + m.m - d - log det C)
    kl = 0.5 * (c.trace() + m @ m - d - eig.clamp_min(1e-12).log().sum())
    return {"mean_norm": m.norm().item(), "mean_variance": (c.trace() / d).item(),
            "eig_min": eig[0].item(), "eig_max": eig[-1].item(), "kl_to_prior": kl.item(),
            "offdiag_rms": ((c - torch.diag(c.diagonal())).pow(2).sum() / (d * d - d)).sqrt().item()}


def run(cfg: Config, ctx: Context) -> Result:
    q1, q2 = ctx.require("q1"), ctx.require("q2")
    arch, sigma_p, kl_weight = q1["arch"], q1["loss"]["sigma_p"], q1["loss"]["kl_weight"]
    x = to_float(ctx.data.train.x, *arch["pixel_range"]).to(ctx.device)
    shown, z_prior = q1["shown_train"].to(ctx.device), q2["z"].to(ctx.device)
    table = LatentTable(len(x), arch["latent_dim"], torch.Generator().manual_seed(ctx.seed + cfg.stream)).to(ctx.device)
    _, dec = vae.build(**arch, device=ctx.device)
    optimizers = make_optimizers(dec, table, cfg)
    order = torch.Generator().manual_seed(ctx.seed)
    hist: dict[str, list] = {"train_loss_running": [], "neg_elbo": [], "kl_nats": [], "recon_error": []}
    recons, samples, epoch_s = {}, {}, []
    for epoch in range(1, cfg.epochs + 1):
        start = time.perf_counter()
        report = lambda i, n, loss: ctx.progress.update(epoch, cfg.epochs, i, n, loss)  # noqa: E731
        hist["train_loss_running"].append(train_epoch(dec, table, optimizers, x, cfg, kl_weight, order, report))
        for key, value in evaluate(dec, table, x, sigma_p, ctx.seed + 1, cfg.eval_batch).items():
            hist[key].append(value)
        if epoch in cfg.snapshot_epochs:
            with torch.no_grad():
                dec.eval()
                recons[epoch], samples[epoch] = dec(table.mean(shown)).cpu(), dec(z_prior).cpu()
        epoch_s.append(time.perf_counter() - start)
        ctx.progress.note(f"epoch {epoch}/{cfg.epochs}: loss {hist['train_loss_running'][-1]:.4f}, "
                          f"-ELBO {hist['neg_elbo'][-1]:.1f} nats, recon MSE {hist['recon_error'][-1]:.4f} "
                          f"({epoch_s[-1]:.1f}s)")
    enc, _ = vae.restore(q1, ctx.device)
    q1_codes = map_batches(lambda xb: enc(xb)[0], x, batch_size=cfg.eval_batch)
    metrics = {
        **hist, "snapshot_epochs": list(cfg.snapshot_epochs),
        "recon_error_snapshots": [hist["recon_error"][e - 1] for e in cfg.snapshot_epochs],
        "latent_stats": {"q3": gaussian_fit(table.mean.weight.detach()), "q1": gaussian_fit(q1_codes)},
        "latent_dim": arch["latent_dim"],
        "timing": {"epoch_s": epoch_s, "mean_epoch_s": sum(epoch_s) / len(epoch_s)},
    }
    figures = comparison_figures(x[shown].cpu(), recons, samples, q1, q2, cfg)
    return Result(metrics, figures, {"decoder": dec.state_dict(), "arch": arch})


def comparison_figures(originals, recons: dict, samples: dict, q1: dict, q2: dict, cfg: Config) -> dict:
    """Q3 beside Q1 (reconstructions) and beside Q2 (prior samples): rows alternate, epoch by epoch."""
    unit = lambda t: to_unit_range(t[:, 0], *q1["arch"]["pixel_range"])  # noqa: E731  (10, 1, 28, 28) -> (10, 28, 28)
    recon_rows, recon_labels = [unit(originals)], ["original"]
    sample_rows, sample_labels = [], []
    for i, e in enumerate(cfg.snapshot_epochs):
        recon_rows += [unit(q1["recon_train"][str(e)].cpu()), unit(recons[e])]
        recon_labels += [f"Q1 epoch {e}", f"Q3 epoch {e}"]
        sample_rows += [q2["images"][i].cpu().numpy(), unit(samples[e])]
        sample_labels += [f"Q2 epoch {e}", f"Q3 epoch {e}"]
    digits = tuple(map(str, range(10)))
    return {"recon_train": DigitGrid(np.stack(recon_rows), tuple(recon_labels), digits),
            "samples": DigitGrid(np.stack(sample_rows), tuple(sample_labels),
                                 tuple(f"z{i + 1}" for i in range(len(sample_rows[0]))))}
