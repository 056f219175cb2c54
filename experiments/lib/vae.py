# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""The VAE machinery shared by Q1 to Q4 and the additional findings: training, evaluation, restoring.

Loss (brief, Eq. 5 with the aggregation of section 3.2): the squared error averaged over the D
pixels plus ``kl_weight`` times the KL averaged over the d latent dimensions. With p(x|z) =
N(G(z), sigma_p^2 I) the true negative ELBO per image is
    ||x - G(z)||^2 / (2 sigma_p^2) + sum_j KL_j + (D/2) log(2 pi sigma_p^2),
so D / (2 sigma_p^2) times the brief's loss is the negative ELBO with the KL weighted by
beta = D / (2 sigma_p^2 d) * kl_weight (12.25 for D = 784, d = 200, sigma_p = 0.4, kl_weight = 1).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch

from experiments.lib.data import batches, to_float
from experiments.lib.models import Decoder, Encoder
from experiments.lib.prob import brief_loss, kl_to_standard_normal, negative_elbo, reparameterize
from experiments.lib.runtime import map_batches

PIXELS = 28 * 28  # D


def effective_kl_weight(sigma_p: float, latent_dim: int, kl_weight: float = 1.0) -> float:
    """beta such that (D / 2 sigma_p^2) * loss = ||x - G||^2 / (2 sigma_p^2) + beta * KL_nats."""
    return PIXELS / (2.0 * sigma_p ** 2 * latent_dim) * kl_weight


PRIOR_STREAM = 2  # Q2's prior latents come from the generator seeded with seed + PRIOR_STREAM


def prior_latents(n: int, dim: int, seed: int) -> torch.Tensor:
    """Q2's (n, dim) draws z ~ N(0, I), fixed by ``seed`` alone (stream ``PRIOR_STREAM``); Q3 decodes the same ones."""
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed + PRIOR_STREAM))


def density_shift(pixel_range) -> float:
    """log p(u) - log p(x) for pixels u = (x - lo) / (hi - lo) in [0, 1]: D log(hi - lo) nats."""
    lo, hi = pixel_range
    # x = lo + (hi - lo) u  =>  p(u) = p(x) (hi - lo)^D
    return PIXELS * math.log(hi - lo)


def output_activation(pixel_range) -> str:
    """G ends in tanh for pixels in [-1, 1], in a sigmoid for [0, 1]."""
    return {(-1.0, 1.0): "tanh", (0.0, 1.0): "sigmoid"}[tuple(pixel_range)]


def build(latent_dim: int, channels: int, pixel_range, device: torch.device) -> tuple[Encoder, Decoder]:
    """Encoder S and generator G, freshly initialised; channels-last weights run faster on CPUs."""
    enc, dec = Encoder(latent_dim, channels), Decoder(latent_dim, channels, output_activation(pixel_range))
    return (enc.to(device, memory_format=torch.channels_last), dec.to(device, memory_format=torch.channels_last))


def arch(cfg) -> dict:
    """What ``build`` needs, as stored in a checkpoint."""
    return {"latent_dim": cfg.latent_dim, "channels": cfg.channels, "pixel_range": list(cfg.pixel_range)}


def train_epoch(codes: Callable, dec, optimizers, x: torch.Tensor, batch_size: int, kl_weight: float,
                generator: torch.Generator, report: Callable) -> float:
    """One pass over x (N, 1, 28, 28) in shuffled batches with the loss of Eq. 5 (Eq. 6 in Q3); mean loss.

    codes(idx, xb) gives the batch's (mu, r), each (B, d): the encoder S(xb) in Q1, the q vectors of
    images idx in Q3. A new eps is drawn for every image at every step.
    """
    dec.train()
    order = batches(len(x), batch_size, generator)
    total = 0.0
    for i, idx in enumerate(order, 1):
        idx = idx.to(x.device)
        xb = x[idx]  # (B, 1, 28, 28)
        mean, logvar = codes(idx, xb)  # (B, d) each
        x_mean = dec(reparameterize(mean, logvar))  # (B, 1, 28, 28)
        mse, kl = brief_loss(xb.flatten(1), x_mean.flatten(1), mean, logvar)
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
def elbo_terms(dec, x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, sigma_p: float, seed: int,
               batch_size: int) -> dict[str, torch.Tensor]:
    """Per-image terms of images x (N, 1, 28, 28) under q = N(mean, diag exp(logvar)), each (N, d), with
    one z per image; eps fixed by ``seed`` so that epochs compare."""
    dec.eval()
    eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(seed)).to(x.device)  # (N, d)
    x_mean = map_batches(dec, reparameterize(mean, logvar, eps), batch_size=batch_size).flatten(1)  # (N, D)
    xf = x.flatten(1)
    kl = kl_to_standard_normal(mean, logvar)  # (N, d)
    return {"mse": ((xf - x_mean) ** 2).mean(1), "kl": kl.mean(1), "kl_nats": kl.sum(1), "kl_dims": kl,
            "neg_elbo": negative_elbo(xf, x_mean, mean, logvar, sigma_p), "mean": mean}


@torch.no_grad()
def per_image(enc, dec, x: torch.Tensor, sigma_p: float, seed: int, batch_size: int) -> dict[str, torch.Tensor]:
    """``elbo_terms`` with q given by the encoder S(x)."""
    enc.eval()
    mean, logvar = map_batches(enc, x, batch_size=batch_size)  # (N, d) each
    return elbo_terms(dec, x, mean, logvar, sigma_p, seed, batch_size)


def summarize(terms: dict[str, torch.Tensor], kl_weight: float, threshold: float) -> dict[str, float]:
    """Split averages: the brief's loss and its parts, -ELBO and KL in nats, active latent units."""
    n = len(terms["mse"])
    return {
        "loss": (terms["mse"] + kl_weight * terms["kl"]).mean().item(),
        "mse": terms["mse"].mean().item(),
        "kl": terms["kl"].mean().item(),
        "neg_elbo": terms["neg_elbo"].mean().item(),
        "neg_elbo_se": (terms["neg_elbo"].std() / math.sqrt(n)).item(),
        "kl_nats": terms["kl_nats"].mean().item(),
        # unit j is active when Var_x(E_q[z_j]) > threshold (Burda et al. 2015)
        "active_units": int((terms["mean"].var(0) > threshold).sum()),
        "kl_units_90": units_holding(terms["kl_dims"].mean(0), 0.9),
    }


def units_holding(kl_per_unit: torch.Tensor, share: float) -> int:
    """The fewest latent units whose average KL adds up to ``share`` of the total."""
    ordered = kl_per_unit.sort(descending=True).values
    return min(len(ordered), int((ordered.cumsum(0) < share * ordered.sum()).sum()) + 1)


@torch.no_grad()
def reconstruct(enc, dec, x: torch.Tensor) -> torch.Tensor:
    """Decoder means at the posterior means, G(mu(x)): (B, 1, 28, 28)."""
    enc.eval()
    dec.eval()
    return dec(enc(x)[0])


@torch.no_grad()
def recon_error(decode: Callable, codes: torch.Tensor, x: torch.Tensor, batch_size: int) -> float:
    """Mean squared error per pixel between x and decode(codes), over a whole split."""
    x_hat = map_batches(decode, codes, batch_size=batch_size)
    return ((x_hat - x) ** 2).mean().item()


@dataclass
class Fit:
    """What ``fit`` returns: histories, per-epoch snapshots and the final networks."""

    history: dict[str, list]
    snapshots: dict[int, dict]  # epoch -> {"decoder": state, "recon": {name: images}, "recon_error": float}
    encoder: Encoder
    decoder: Decoder
    epoch_s: list[float]


def fit(cfg, ctx, x_train: torch.Tensor, evals: dict[str, torch.Tensor], shown: dict[str, torch.Tensor],
        parts: dict[str, tuple[str, torch.Tensor]] | None = None) -> Fit:
    """Train on x_train for cfg.epochs; evaluate every split of ``evals`` after every epoch; at
    cfg.snapshot_epochs keep the generator, the reconstructions of ``shown`` (name -> (10, 1, 28, 28))
    and the reconstruction error over the whole of x_train. ``parts`` (name -> (split of ``evals``,
    positions)) are summarised from the same per-image terms, at no extra forward pass.
    """
    parts = parts or {}
    enc, dec = build(**arch(cfg), device=ctx.device)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=cfg.lr)
    generator = torch.Generator().manual_seed(ctx.seed)
    history: dict[str, list] = {"train_loss_running": [], **{name: [] for name in (*evals, *parts)}}
    snapshots, epoch_s = {}, []
    for epoch in range(1, cfg.epochs + 1):
        start = time.perf_counter()
        report = lambda i, n, loss: ctx.progress.update(epoch, cfg.epochs, i, n, loss)  # noqa: E731
        codes = lambda idx, xb: enc.train()(xb)  # noqa: E731
        history["train_loss_running"].append(
            train_epoch(codes, dec, [opt], x_train, cfg.batch_size, cfg.kl_weight, generator, report))
        for name, x in evals.items():
            terms = per_image(enc, dec, x, cfg.sigma_p, ctx.seed + 1, cfg.eval_batch)
            history[name].append(summarize(terms, cfg.kl_weight, cfg.active_threshold))
            for part, (_, idx) in ((p, v) for p, v in parts.items() if v[0] == name):
                history[part].append(summarize({k: t[idx] for k, t in terms.items()}, cfg.kl_weight, cfg.active_threshold))
        if epoch in cfg.snapshot_epochs:
            snapshots[epoch] = {
                "decoder": {k: v.detach().cpu().clone() for k, v in dec.state_dict().items()},
                "recon": {name: reconstruct(enc, dec, x).cpu() for name, x in shown.items()},
                "recon_error": recon_error(dec, map_batches(lambda xb: enc(xb)[0], x_train, batch_size=cfg.eval_batch),
                                           x_train, cfg.eval_batch),
            }
        epoch_s.append(time.perf_counter() - start)
        scores = ", ".join(f"{name}: loss {h[-1]['loss']:.4f}, -ELBO {h[-1]['neg_elbo']:.1f} nats, KL {h[-1]['kl_nats']:.1f} "
                           f"nats, {h[-1]['active_units']} active units" for name, h in history.items() if name in evals)
        ctx.progress.note(f"epoch {epoch}/{cfg.epochs}: {scores} ({epoch_s[-1]:.1f}s)")
    return Fit(history, snapshots, enc, dec, epoch_s)


def fit_alone(cfg, ctx) -> tuple[dict, list[float]]:
    """Train a VAE under ``cfg`` (a ``q1_vae.Config``) on the training split with no per-epoch evaluation;
    its artifacts in the form of Q1's checkpoint (``restore`` reads them), which hold only what was computed
    (so equal weights give equal checkpoint bytes), and its epoch times in seconds, for the metrics."""
    x = to_float(ctx.data.train.x, *cfg.pixel_range).to(ctx.device)
    result = fit(cfg, ctx, x, {}, {})
    return ({"arch": arch(cfg), "loss": {"sigma_p": cfg.sigma_p, "kl_weight": cfg.kl_weight},
             "encoder": result.encoder.state_dict(), "decoder": result.decoder.state_dict(),
             "train_loss_running": result.history["train_loss_running"]}, result.epoch_s)


def restore(state: dict, device: torch.device) -> tuple[Encoder, Decoder]:
    """Rebuild Q1's final networks from its checkpoint artifacts (``arch``, ``encoder``, ``decoder``)."""
    return restore_encoder(state, device), restore_decoder(state["arch"], state["decoder"], device)


def restore_encoder(state: dict, device: torch.device) -> Encoder:
    """Q1's final encoder S, in eval mode."""
    enc, _ = build(**state["arch"], device=device)
    enc.load_state_dict(state["encoder"])
    return enc.eval()


def restore_decoder(arch_: dict, weights: dict, device: torch.device) -> Decoder:
    """A generator G with the given architecture and weights, in eval mode."""
    _, dec = build(**arch_, device=device)
    dec.load_state_dict(weights)
    return dec.eval()
