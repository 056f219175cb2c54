"""Q3 of the brief (section 3.4): latent optimization instead of an amortized encoder.

Question: train a generator by variational inference with free q vectors, initialised from
N(0, I); show reconstructions of ten training images (one per digit) at epochs 1, 5, 10, 20 and 30
and compare with Q1; which method proposed better q vectors? Sample ten prior latents through the
new generator and compare with Q2; was the initialisation enough to establish a good prior?

Method: Q1's generator architecture, a fresh one, and for each of the N training images its own
mu_i and r_i = log sigma_i^2 as rows of two sparse embeddings (mu_i ~ N(0, I), and r_i = log s^2
with s ~ N(0, I), as section 3.2 says). The loss is Q1's (Eq. 6, same aggregation). Adam with
learning rate 1e-3 moves the generator; ``torch.optim.SparseAdam`` with 1e-2 moves only the rows of
the images in the batch, so an image's q vector changes exactly once per epoch. SparseAdam corrects
every row's bias with the table's global step count, which makes those steps several times the
learning rate; ``RowAdam`` (Adam per row, over its own updates) is the exact alternative, and the
additional findings rerun Q3 with it. Answered from numbers: the reconstruction error G(mu_i) over the
whole training set at each snapshot for both methods, the training -ELBO, and the moments of the
aggregate posterior (1/N) sum_i q_i against N(0, I) with the KL of its moment-matched Gaussian.

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
from .data import to_float
from .models import Decoder
from .plotting import to_unit_range
from .runtime import map_batches

SECTION = "q3"
TITLE = "Q3: latent optimization"
REQUIRES = ("q1", "q2")


@dataclass(frozen=True)
class Config:
    epochs: int = 30  # passes over the training subset, as in Q1
    batch_size: int = 128  # images per step, as in Q1
    lr_decoder: float = 1e-3  # Adam for the generator (section 3.2)
    lr_latents: float = 1e-2  # for the q vectors: 10x, as each row moves once per epoch (section 3.2)
    latent_optimizer: str = "sparse_adam"  # torch.optim.SparseAdam (lazy Adam), or "row_adam": Adam per row
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


class RowAdam(torch.optim.Optimizer):
    """Adam for tables with sparse row gradients, with a step count per row.

    Only the rows in the batch move, and each row's moments and bias corrections advance only when
    it has a gradient, so every q vector follows plain Adam over its own updates (one per epoch).
    ``torch.optim.SparseAdam`` also moves only those rows, but corrects the bias with the table's
    global step count, which scales the steps of a row seen once per epoch by up to about 6x.
    """

    def __init__(self, params, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            (b1, b2), lr, eps = group["betas"], group["lr"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.coalesce()  # sparse (N, d) with one entry per distinct row
                rows, g = grad.indices()[0], grad.values()  # (k,), (k, d)
                state = self.state[p]
                if not state:
                    state.update(m=torch.zeros_like(p), v=torch.zeros_like(p), t=torch.zeros(len(p), device=p.device))
                m = state["m"][rows] * b1 + (1 - b1) * g
                v = state["v"][rows] * b2 + (1 - b2) * g * g
                t = state["t"][rows] + 1  # (k,) this row's own step count
                state["m"][rows], state["v"][rows], state["t"][rows] = m, v, t
                # Adam: theta -= lr * m_hat / (sqrt(v_hat) + eps), hats with this row's bias corrections
                m_hat, v_hat = m / (1 - b1 ** t)[:, None], v / (1 - b2 ** t)[:, None]
                p[rows] -= lr * m_hat / (v_hat.sqrt() + eps)


def make_optimizers(dec: nn.Module, table: LatentTable, cfg: Config):
    """Adam for the generator; for the latents an Adam that moves only the rows in the batch."""
    latent_adam = {"sparse_adam": torch.optim.SparseAdam, "row_adam": RowAdam}[cfg.latent_optimizer]
    return (torch.optim.Adam(dec.parameters(), lr=cfg.lr_decoder),
            latent_adam(list(table.parameters()), lr=cfg.lr_latents))


@torch.no_grad()
def evaluate(dec: Decoder, table: LatentTable, x: torch.Tensor, idx: torch.Tensor, sigma_p: float, seed: int,
             batch_size: int) -> dict:
    """-ELBO and KL in nats per image over the images ``idx`` of x, one z each with noise fixed by ``seed``."""
    terms = vae.elbo_terms(dec, x[idx], *table(idx), sigma_p, seed, batch_size)
    return {"neg_elbo": terms["neg_elbo"].mean().item(), "kl_nats": terms["kl_nats"].mean().item()}


def aggregate_fit(mean: torch.Tensor, logvar: torch.Tensor) -> dict:
    """The aggregate posterior (1/N) sum_i N(mu_i, diag sigma_i^2) moment-matched by N(m, C), against N(0, I).

    m = mean of mu_i; C = Cov(mu_i) + diag(mean of sigma_i^2); KL(N(m, C) || N(0, I)) = 1/2 (tr C + m.m - d - log det C).
    """
    m, sigma2 = mean.mean(0), logvar.exp().mean(0)  # (d,) each
    c = torch.cov(mean.T) + torch.diag(sigma2)
    eig = torch.linalg.eigvalsh(c)
    d = mean.shape[1]
    kl = 0.5 * (c.trace() + m @ m - d - eig.log().sum())
    return {"mean_norm": m.norm().item(), "mu_variance": mean.var(0).mean().item(), "sigma2": sigma2.mean().item(),
            "eig_min": eig[0].item(), "eig_max": eig[-1].item(), "kl_to_prior": kl.item()}


@dataclass
class LatentFit:
    """What ``fit_latents`` returns: histories, snapshots and the final generator and q vectors."""

    history: dict[str, list]
    recon_error: list[float]  # over all training images, at each snapshot epoch
    recons: dict[int, torch.Tensor]  # snapshot epoch -> (10, 1, 28, 28) reconstructions of Q1's shown images
    samples: dict[int, torch.Tensor]  # snapshot epoch -> the prior latents decoded
    decoder: Decoder
    table: LatentTable
    moved_rms: dict[str, float]  # root mean square distance of mu_i and r_i from their initialisation
    epoch_s: list[float]


def fit_latents(cfg: Config, ctx: Context, q1: dict, x: torch.Tensor, z_prior: torch.Tensor) -> LatentFit:
    """Train a fresh generator and the q vectors of all images x (N, 1, 28, 28) for cfg.epochs."""
    arch, sigma_p, kl_weight = q1["arch"], q1["loss"]["sigma_p"], q1["loss"]["kl_weight"]
    shown = q1["shown_train"].to(ctx.device)
    subset = q1["eval_train"].to(ctx.device)  # Q1's class-balanced evaluation subset, so the -ELBOs compare
    table = LatentTable(len(x), arch["latent_dim"], torch.Generator().manual_seed(ctx.seed + cfg.stream)).to(ctx.device)
    start_mean, start_logvar = table.mean.weight.detach().clone(), table.logvar.weight.detach().clone()
    _, dec = vae.build(**arch, device=ctx.device)
    optimizers, order = make_optimizers(dec, table, cfg), torch.Generator().manual_seed(ctx.seed)
    hist: dict[str, list] = {"train_loss_running": [], "neg_elbo": [], "kl_nats": []}
    recons, samples, recon_error, epoch_s = {}, {}, [], []
    for epoch in range(1, cfg.epochs + 1):
        start = time.perf_counter()
        report = lambda i, n, loss: ctx.progress.update(epoch, cfg.epochs, i, n, loss)  # noqa: E731
        codes = lambda idx, xb: table(idx)  # noqa: E731
        hist["train_loss_running"].append(
            vae.train_epoch(codes, dec, optimizers, x, cfg.batch_size, kl_weight, order, report))
        for key, value in evaluate(dec, table, x, subset, sigma_p, ctx.seed + 1, cfg.eval_batch).items():
            hist[key].append(value)
        if epoch in cfg.snapshot_epochs:
            with torch.no_grad():
                dec.eval()
                recons[epoch], samples[epoch] = dec(table.mean(shown)).cpu(), dec(z_prior).cpu()
            recon_error.append(vae.recon_error(dec, table.mean.weight, x, cfg.eval_batch))
        epoch_s.append(time.perf_counter() - start)
        ctx.progress.note(f"epoch {epoch}/{cfg.epochs}: loss {hist['train_loss_running'][-1]:.4f}, "
                          f"-ELBO {hist['neg_elbo'][-1]:.1f} nats, KL {hist['kl_nats'][-1]:.1f} nats ({epoch_s[-1]:.1f}s)")
    rms = lambda a, b: (a.detach() - b).pow(2).mean().sqrt().item()  # noqa: E731
    moved = {"mean": rms(table.mean.weight, start_mean), "logvar": rms(table.logvar.weight, start_logvar)}
    return LatentFit(hist, recon_error, recons, samples, dec, table, moved, epoch_s)


def run(cfg: Config, ctx: Context) -> Result:
    q1, q2 = ctx.require("q1"), ctx.require("q2")
    x = to_float(ctx.data.train.x, *q1["arch"]["pixel_range"]).to(ctx.device)
    fit = fit_latents(cfg, ctx, q1, x, q2["z"].to(ctx.device))
    q1_codes = map_batches(vae.restore_encoder(q1, ctx.device), x, batch_size=cfg.eval_batch)  # (mu, logvar) of every training image
    table = fit.table
    metrics = {
        **fit.history, "snapshot_epochs": list(cfg.snapshot_epochs), "recon_error": fit.recon_error,
        "latent_stats": {"q3": aggregate_fit(table.mean.weight.detach(), table.logvar.weight.detach()),
                         "q1": aggregate_fit(*q1_codes)},
        "moved_rms": fit.moved_rms,
        "timing": {"epoch_s": fit.epoch_s, "mean_epoch_s": sum(fit.epoch_s) / len(fit.epoch_s)},
    }
    originals = x[q1["shown_train"].to(ctx.device)].cpu()
    figures = comparison_figures(originals, fit.recons, fit.samples, q1, q2, cfg)
    return Result(metrics, figures, {"decoder": fit.decoder.state_dict(), "arch": q1["arch"]})


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
