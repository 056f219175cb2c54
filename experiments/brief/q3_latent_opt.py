# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""Q3 of the brief (section 3.4): latent optimization instead of an amortized encoder.

Question: train a generator by variational inference with free q vectors, initialised from
N(0, I); show reconstructions of ten training images (one per digit) at epochs 1, 5, 10, 20 and 30
and compare with Q1; which method proposed better q vectors? Sample ten prior latents through the
new generator and compare with Q2; was the initialisation enough to establish a good prior?

Method: Q1's generator architecture and loss (Eq. 6, same aggregation, settings read from
``Config.model``, Q1's own), a fresh generator, and for each of the N training images its own mu_i and
r_i = log sigma_i^2 as rows of two embeddings (mu_i ~ N(0, I), and r_i = log s^2 with s ~ N(0, I), as
section 3.2 says). The brief's setting read literally is the headline: ``torch.optim.Adam`` with
learning rate 1e-3 for the generator and 1e-2 for the q table. That Adam is dense: a row's gradient is
zero while its image is not in the batch, but its momentum keeps moving it for some ten steps after each
visit. Two sparse optimizers move only the rows in the batch: ``torch.optim.SparseAdam`` (whose bias
correction uses the table's global step count, so its steps on a row seen once per epoch are several
times the learning rate) and ``RowAdam`` below (Adam per row over its own updates); sections
``q3x_sparse`` and ``q3x_rowadam`` train with them, and ``q3x_long`` continues the headline run.
Q3 uses Q1's shown images, class-balanced evaluation subset and Q2's prior latents, all derived from the
seed alone (``data.q1_picks``, ``vae.prior_latents``), so it does not need Q1's checkpoint.
Answered from numbers: the reconstruction error G(mu_i) over the whole training set at each snapshot,
the training -ELBO per epoch, and the moments of the aggregate posterior (1/N) sum_i q_i against N(0, I)
with the KL of its moment-matched Gaussian, at initialisation and after training.

Rerun: ``python reproduce.py --only q3``
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from experiments.brief import q1_vae
from experiments.lib import vae
from experiments.lib.contract import Context, DigitGrid, Result
from experiments.lib.data import q1_picks, to_float
from experiments.lib.models import Decoder
from experiments.lib.plotting import to_unit_range
from experiments.brief.q2_sampling import pixel_diversity

SECTION = "q3"
TITLE = "Q3: latent optimization"
REQUIRES: tuple[str, ...] = ()
OPTIMIZER_NAMES = {"adam": "Adam (dense)", "sparse_adam": "SparseAdam", "row_adam": "Adam per row"}


@dataclass(frozen=True)
class Config:
    epochs: int = 30  # passes over the training subset, as in Q1
    batch_size: int = 128  # images per step, as in Q1
    lr_decoder: float = 1e-3  # Adam for the generator (section 3.2)
    lr_latents: float = 1e-2  # for the q vectors: 10x, as each row has a gradient once per epoch (section 3.2)
    latent_optimizer: str = "adam"  # "adam": torch.optim.Adam over the table; "sparse_adam"; "row_adam" (RowAdam)
    snapshot_epochs: tuple[int, ...] = (1, 5, 10, 20, 30)  # epochs whose reconstructions and samples are kept
    eval_batch: int = 1000  # images per forward pass when evaluating
    stream: int = 3  # the q vectors are initialised from the generator seeded with seed + stream
    model: q1_vae.Config = q1_vae.Config()  # Q1's architecture, loss and evaluation subset, so the two compare


SMOKE = Config(epochs=2, batch_size=64, snapshot_epochs=(1, 2), model=q1_vae.SMOKE)

HEADLINE = ("recon_error", "training reconstruction MSE, final epoch")
TOLERANCES = {"recon_error": (1e-6, 0.01), "latent_stats.kl_to_prior": (1e-3, 25.0)}


class LatentTable(nn.Module):
    """mu_i and r_i = log sigma_i^2 of every training image, as two embeddings (sparse gradients for the
    sparse optimizers, dense for torch.optim.Adam)."""

    def __init__(self, n: int, dim: int, generator: torch.Generator, sparse: bool = False):
        super().__init__()
        self.mean = nn.Embedding(n, dim, sparse=sparse)
        self.logvar = nn.Embedding(n, dim, sparse=sparse)
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
    """Adam for the generator; for the q table the optimizer ``cfg.latent_optimizer``."""
    if cfg.latent_optimizer == "adam":
        # fused: one pass over the 8M table entries per step, about ten times faster on a CPU than the default
        latent = torch.optim.Adam(table.parameters(), lr=cfg.lr_latents, fused=True)
    else:
        latent = {"sparse_adam": torch.optim.SparseAdam, "row_adam": RowAdam}[cfg.latent_optimizer](
            list(table.parameters()), lr=cfg.lr_latents)
    return [torch.optim.Adam(dec.parameters(), lr=cfg.lr_decoder), latent]


@torch.no_grad()
def evaluate(dec: Decoder, table: LatentTable, x: torch.Tensor, idx: torch.Tensor, sigma_p: float, seed: int,
             batch_size: int) -> dict:
    """-ELBO and KL in nats per image over the images ``idx`` of x, one z each with noise fixed by ``seed``."""
    terms = vae.elbo_terms(dec, x[idx], *table(idx), sigma_p, seed, batch_size)
    return {"neg_elbo": terms["neg_elbo"].mean().item(), "kl_nats": terms["kl_nats"].mean().item()}


def aggregate_fit(mean: torch.Tensor, logvar: torch.Tensor) -> dict:
    """The aggregate posterior (1/N) sum_i N(mu_i, diag sigma_i^2) moment-matched by N(m, C), against N(0, I).

    m = mean of mu_i; C = Cov(mu_i) + diag(mean of sigma_i^2); KL(N(m, C) || N(0, I)) = 1/2 (tr C + m.m - d - log det C).
    Of all distributions with the aggregate's mean and covariance the Gaussian is nearest N(0, I) in KL, so
    this is a lower bound on KL(aggregate || N(0, I)).
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
    """What ``fit_latents`` returns: histories, snapshots, the final generator and q vectors, and the
    training state from which ``q3x_long`` continues."""

    history: dict[str, list]  # per epoch of this run
    recon_error: list[float]  # over all training images, at each snapshot epoch reached
    recons: dict[int, torch.Tensor]  # snapshot epoch -> (10, 1, 28, 28) reconstructions of the shown images
    samples: dict[int, torch.Tensor]  # snapshot epoch -> the prior latents decoded
    decoder: Decoder
    table: LatentTable
    moved_rms: dict[str, float]  # root mean square distance of mu_i and r_i from their initialisation
    epoch_s: list[float]
    state: dict  # weights, optimizer moments and random-number states at the last epoch
    init_stats: dict  # ``aggregate_fit`` of the q vectors as initialised


def fit_latents(cfg: Config, ctx: Context, x: torch.Tensor, shown: torch.Tensor, subset: torch.Tensor,
                z_prior: torch.Tensor, resume: dict | None = None) -> LatentFit:
    """Train a fresh generator and the q vectors of all images x (N, 1, 28, 28) up to epoch cfg.epochs,
    or continue the run whose ``LatentFit.state`` is ``resume``."""
    base = cfg.model
    sigma_p, kl_weight = base.sigma_p, base.kl_weight
    init = torch.Generator().manual_seed(ctx.seed + cfg.stream)
    table = LatentTable(len(x), base.latent_dim, init, sparse=cfg.latent_optimizer != "adam").to(ctx.device)
    _, dec = vae.build(**vae.arch(base), device=ctx.device)
    optimizers, order = make_optimizers(dec, table, cfg), torch.Generator().manual_seed(ctx.seed)
    # the brief's initialisation: each q_i is a draw of the prior, but their mixture is not N(0, I)
    start_mean, start_logvar = table.mean.weight.detach().clone(), table.logvar.weight.detach().clone()
    init_stats, first = aggregate_fit(start_mean, start_logvar), 1
    if resume is not None:  # the exact continuation: same weights, moments, shuffling and noise streams
        table.load_state_dict(resume["table"])
        dec.load_state_dict(resume["decoder"])
        for opt, saved in zip(optimizers, resume["optimizers"]):
            opt.load_state_dict(saved)
        order.set_state(resume["order_rng"])
        torch.set_rng_state(resume["torch_rng"])
        first = resume["epoch"] + 1
    hist: dict[str, list] = {"train_loss_running": [], "neg_elbo": [], "kl_nats": []}
    recons, samples, recon_error, epoch_s = {}, {}, [], []
    for epoch in range(first, cfg.epochs + 1):
        start = time.perf_counter()
        report = lambda i, n, loss: ctx.progress.update(epoch - first + 1, cfg.epochs - first + 1, i, n, loss)  # noqa: E731
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
    state = {"table": table.state_dict(), "decoder": dec.state_dict(), "optimizers": [o.state_dict() for o in optimizers],
             "order_rng": order.get_state(), "torch_rng": torch.get_rng_state(), "epoch": cfg.epochs}
    return LatentFit(hist, recon_error, recons, samples, dec, table, moved, epoch_s, state, init_stats)


def recent_drop(values: list[float], window: int = 5) -> float:
    """Mean fall per epoch over the last ``window`` epochs (fewer when fewer were run; 0 for one)."""
    w = min(window, len(values) - 1)
    return (values[-1 - w] - values[-1]) / w if w > 0 else 0.0


def study(cfg: Config, ctx: Context, resume: dict | None = None) -> tuple[LatentFit, dict, dict]:
    """Train (or continue) Q3 with ``cfg``; its metrics and its figures (reconstructions, prior samples)."""
    base = cfg.model
    picks = q1_picks(ctx.data, ctx.seed, base.eval_per_digit)
    x = to_float(ctx.data.train.x, *base.pixel_range).to(ctx.device)
    shown, subset = picks.shown["train"].to(ctx.device), picks.subsets["train"].flatten().to(ctx.device)
    z = vae.prior_latents(10, base.latent_dim, ctx.seed).to(ctx.device)
    fit = fit_latents(cfg, ctx, x, shown, subset, z, resume)
    snapshots = [e for e in cfg.snapshot_epochs if e in fit.recons]
    metrics = {
        **fit.history, "optimizer": OPTIMIZER_NAMES[cfg.latent_optimizer], "snapshot_epochs": snapshots,
        "recon_error": fit.recon_error, "moved_rms": fit.moved_rms, "final_neg_elbo": fit.history["neg_elbo"][-1],
        "neg_elbo_drop": recent_drop(fit.history["neg_elbo"]),  # nats per epoch, last five epochs
        # how different the ten decoded prior latents are at each snapshot (0: one image for every z)
        "sample_diversity": [pixel_diversity(torch.from_numpy(to_unit_range(fit.samples[e], *base.pixel_range)))
                             for e in snapshots],
        "latent_stats": aggregate_fit(fit.table.mean.weight.detach(), fit.table.logvar.weight.detach()),
        "latent_stats_init": fit.init_stats,
        "timing": {"epoch_s": fit.epoch_s, "mean_epoch_s": sum(fit.epoch_s) / max(len(fit.epoch_s), 1)},
    }
    figures = progression_figures(x[shown].cpu(), fit.recons, fit.samples, snapshots, base.pixel_range)
    return fit, metrics, figures


def artifacts(fit: LatentFit, cfg: Config) -> dict:
    """What later sections use: the final generator, its architecture and the per-epoch -ELBO."""
    return {"decoder": fit.decoder.state_dict(), "arch": vae.arch(cfg.model), "history": fit.history}


def run(cfg: Config, ctx: Context) -> Result:
    fit, metrics, figures = study(cfg, ctx)
    return Result(metrics, figures, {**artifacts(fit, cfg), "resume": fit.state})


def progression_figures(originals: torch.Tensor, recons: dict, samples: dict, epochs: list[int], pixel_range) -> dict:
    """Q3's own progression, laid out as Q1's and Q2's figures: the originals, then one row per snapshot epoch."""
    unit = lambda t: to_unit_range(t[:, 0], *pixel_range)  # noqa: E731  (10, 1, 28, 28) -> (10, 28, 28)
    labels = tuple(f"epoch {e}" for e in epochs)
    return {"recon_train": DigitGrid(np.stack([unit(originals)] + [unit(recons[e]) for e in epochs]),
                                     ("original", *labels), tuple(map(str, range(10)))),
            "samples": DigitGrid(np.stack([unit(samples[e]) for e in epochs]), labels,
                                 tuple(f"z{i + 1}" for i in range(len(samples[epochs[0]]))))}
