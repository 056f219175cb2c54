# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""Beyond the brief, for Q4: do the log p(x) estimates converge, and how large is the amortization gap?

Question: Eq. 9 with the encoder's q_x and M = 1000 is the brief's log p(x); its importance weights
are degenerate, so is it close to log p(x)? Q4's reference (q* fitted to each posterior, then
annealed importance sampling with HMC) is meant to be: is it converged at the budget Q4 uses? And how
much of the distance between the encoder's ELBO and log p(x) is the encoder's (Cremer, Li and
Duvenaud 2018), for Q1's generator and for Q3's?

Method: on the ten training images of Q4(a) (one per digit): Eq. 9 against its number of samples M
from 10 to 10^4, each budget repeated on disjoint blocks of one pool of samples (independent
repeats); AIS from q* against its number of annealing steps T, each repeated with independent
chains; the budget of both in decoder evaluations per image (M; T x chains x leapfrog steps), with
the effective sample size; the ELBO of q* against the number of Adam steps that fit it. On training
images of Q1's evaluation subset, with each final generator frozen: the ELBO of Q1's encoder, of q*
fitted to each image, and of q* fitted to the objective the encoder was trained on (the KL weighted
by beta = D / (2 sigma_p^2 d)); for Q3's generator, q* fitted from the prior, against the -ELBO of
Q3's learned q vectors that Q3 reports for the same subset (its q vectors are not stored).

Rerun: ``python reproduce.py --only q4conv`` (needs Q1's and Q3's checkpoints)
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from experiments.brief import q4_loglik as q4
from experiments.lib import vae
from experiments.lib.contract import Context, Result
from experiments.lib.data import to_float
from experiments.lib.plotting import new_figure
from experiments.lib.prob import (ais_log_weights, effective_sample_size, fit_diag_gaussian, importance_log_weights,
                   kl_to_standard_normal, log_mean_exp)

SECTION = "q4conv"
TITLE = "Q4 beyond the brief: convergence of log p(x), and the amortization gap"
REQUIRES = ("q1", "q3")


@dataclass(frozen=True)
class Config:
    eq9_budgets: tuple[int, ...] = (10, 30, 100, 300, 1000, 3000, 10000)  # M for Eq. 9
    eq9_pool: int = 30000  # samples per image, cut into disjoint blocks of M: pool // M independent repeats
    max_repeats: int = 10  # at most this many repeats per budget
    ais_steps: tuple[int, ...] = (2, 6, 20, 60, 200, 600, 1500)  # T for AIS (Q4's chains and leapfrog steps)
    ais_repeats: int = 3  # independent AIS runs per budget
    fit_steps: tuple[int, ...] = (30, 100, 300, 1000)  # Adam steps fitting q*, to see where its ELBO stops rising
    plateau_nats: float = 0.5  # a budget is on the plateau when its mean is this close to every larger budget's
    gap_images: int = 30  # training images (from Q1's evaluation subset) for the amortization gaps
    gap_fit_steps: tuple[int, ...] = (300, 1000)  # Adam steps for q* from the prior under Q3's generator
    stream: int = 7  # images of the gap analysis and all noise use generators seeded with seed + stream (+1)


SMOKE = Config(eq9_budgets=(10, 30), eq9_pool=60, ais_steps=(2, 5), ais_repeats=2, fit_steps=(5, 10), gap_images=4,
               gap_fit_steps=(5, 10))

HEADLINE = ("ais.chosen_on_plateau", "Q4's AIS budget on the plateau (1 = yes)")
TOLERANCES = {"ais.mean": (1e-3, 2.0), "eq9.mean": (1e-3, 10.0)}


def eq9_sweep(xf, mean, logvar, decode, sigma_p: float, cfg: Config, chunk: int, generator) -> dict:
    """Eq. 9 for images xf (B, D) with q_x = N(mean, exp(logvar)) at each M: one pool of log-weights,
    cut into min(max_repeats, pool // M) disjoint blocks of M, each an independent estimate."""
    with torch.no_grad():
        pool = importance_log_weights(xf, mean, logvar, decode, sigma_p, cfg.eq9_pool, chunk, generator)  # (P, B)
    est, ess = [], []
    for m in cfg.eq9_budgets:
        reps = min(cfg.max_repeats, cfg.eq9_pool // m)
        blocks = pool[: reps * m].view(reps, m, -1).transpose(0, 1)  # (M, R, B)
        est.append(log_mean_exp(blocks))  # (R, B)
        ess.append(effective_sample_size(blocks) / m)
    return {"budgets": list(cfg.eq9_budgets), "est": est, "ess_fraction": ess}


def ais_sweep(xf, m_star, lv_star, decode, sigma_p: float, cfg: Config, q4cfg: q4.Config, generator) -> dict:
    """AIS from q* at each T with ``ais_repeats`` independent runs of Q4's number of chains."""
    c, est, ess, accept = q4cfg.ais_chains, [], [], []
    for steps in cfg.ais_steps:
        log_w, acc = ais_log_weights(xf, decode, sigma_p, m_star, lv_star, steps, c * cfg.ais_repeats,
                                     q4cfg.ais_leapfrog, q4cfg.ais_step_size, generator=generator)
        runs = log_w.view(cfg.ais_repeats, c, -1).transpose(0, 1)  # (C, R, B)
        est.append(log_mean_exp(runs))  # (R, B)
        ess.append(effective_sample_size(runs) / c)
        accept.append(acc.mean().item())
    budgets = [t * c * q4cfg.ais_leapfrog for t in cfg.ais_steps]  # decoder evaluations (with gradient) per image
    return {"steps": list(cfg.ais_steps), "budgets": budgets, "est": est, "ess_fraction": ess, "accept": accept}


def curve(sweep: dict, target: float) -> dict:
    """Per budget: the mean over images of the estimate (averaged over repeats), its standard error
    over repeats (the spread of the repeats' image means / sqrt(R)), the median per-image spread over
    repeats, the repeats, and the median effective sample size as a fraction of M (or of the chains);
    ``below`` is the mean minus ``target``."""
    out = {"mean": [], "se": [], "sd_image": [], "repeats": [], "ess_fraction": [], "below": []}
    for est, ess in zip(sweep["est"], sweep["ess_fraction"]):
        r = est.shape[0]
        mean = est.mean().item()
        out["mean"].append(mean)
        out["below"].append(mean - target)
        out["se"].append(est.mean(1).std().item() / math.sqrt(r) if r > 1 else 0.0)
        out["sd_image"].append(est.std(0).median().item() if r > 1 else 0.0)
        out["repeats"].append(r)
        out["ess_fraction"].append(ess.median().item())
    return out


def plateau(means: list[float], nats: float) -> list[bool]:
    """Whether each budget's mean is within ``nats`` of every larger budget's mean."""
    return [all(abs(a - b) <= nats for b in means[i:]) for i, a in enumerate(means)]


def fit_curve(xf, decode, sigma_p: float, mean, logvar, steps: tuple[int, ...], q4cfg: q4.Config, generator) -> list[float]:
    """Mean ELBO of q* over the images after each number of Adam steps (each a fresh fit from (mean, logvar))."""
    out = []
    for n in steps:
        m, lv, _ = fit_diag_gaussian(xf, decode, sigma_p, mean, logvar, n, q4cfg.fit_samples, q4cfg.fit_lr, generator)
        out.append(elbo(xf, decode, sigma_p, m, lv, q4cfg, generator).mean().item())
    return out


@torch.no_grad()
def elbo(xf, decode, sigma_p: float, mean, logvar, q4cfg: q4.Config, generator) -> torch.Tensor:
    """ELBO of q = N(mean, exp(logvar)) per image (B,), E_q log w from ``elbo_samples`` draws."""
    return importance_log_weights(xf, mean, logvar, decode, sigma_p, q4cfg.elbo_samples, q4cfg.chunk, generator).mean(0)


def amortization(q1: dict, q3: dict, x: torch.Tensor, cfg: Config, q4cfg: q4.Config, device, generator) -> dict:
    """Per-image ELBOs (means and standard errors over the images x (N, 1, 28, 28)) with each final generator
    frozen. Q1: its encoder's q_x; q* fitted to the ELBO from q_x; q*_beta fitted to the training
    objective E log p(x|z) - beta KL, and that objective for q_x and q*_beta. Q3: q* fitted from the
    prior after each of ``gap_fit_steps`` Adam steps (its q vectors are not stored)."""
    sigma_p = q1["loss"]["sigma_p"]
    beta = vae.effective_kl_weight(sigma_p, q1["arch"]["latent_dim"], q1["loss"]["kl_weight"])
    xf = x.flatten(1)
    enc, dec1 = vae.restore(q1, device)
    dec3 = vae.restore_decoder(q3["arch"], q3["decoder"], device)
    for dec in (dec1, dec3):
        dec.requires_grad_(False)
    d1, d3 = (lambda z: dec1(z).flatten(1)), (lambda z: dec3(z).flatten(1))
    with torch.no_grad():
        mean, logvar = enc(x)
    fit = lambda decode, m0, lv0, steps, w=1.0: fit_diag_gaussian(  # noqa: E731
        xf, decode, sigma_p, m0, lv0, steps, q4cfg.fit_samples, q4cfg.fit_lr, generator, w)[:2]
    star, star_beta = fit(d1, mean, logvar, q4cfg.fit_steps), fit(d1, mean, logvar, q4cfg.fit_steps, beta)
    kl = lambda q: kl_to_standard_normal(*q).sum(1)  # noqa: E731
    e_x, e_star, e_beta = (elbo(xf, d1, sigma_p, *q, q4cfg, generator) for q in ((mean, logvar), star, star_beta))
    zero = torch.zeros_like(mean)
    q3_star = [elbo(xf, d3, sigma_p, *fit(d3, zero, zero, n), q4cfg, generator) for n in cfg.gap_fit_steps]
    stat = lambda v: {"mean": v.mean().item(), "se": (v.std() / math.sqrt(len(v))).item()}  # noqa: E731
    return {"images": len(x), "beta": beta,
            "q1": {"encoder": stat(e_x), "star": stat(e_star), "star_beta": stat(e_beta), "gap": stat(e_star - e_x),
                   # J_beta = ELBO - (beta - 1) KL: the objective (in nats) the encoder was trained on
                   "objective_encoder": stat(e_x - (beta - 1) * kl((mean, logvar))),
                   "objective_star_beta": stat(e_beta - (beta - 1) * kl(star_beta)),
                   "objective_gap": stat(e_beta - (beta - 1) * kl(star_beta) - e_x + (beta - 1) * kl((mean, logvar)))},
            "q3": {"fit_steps": list(cfg.gap_fit_steps), "star": [stat(v) for v in q3_star]}}


def figure(eq9: dict, ais: dict, fits: dict):
    """Left: estimate minus the reference against the budget (log axis), mean over the images with the
    standard error over repeats; middle: effective sample size as a share of M (of the chains for AIS);
    right: ELBO of q* against the Adam steps that fit it."""
    fig, (ax1, ax2, ax3) = new_figure(3, width_in=6.6, height_in=2.0)
    for label, c, budgets, marker in (("Eq. 9 ($q_x$)", eq9, eq9["budgets"], "o"), ("AIS from $q^*$", ais, ais["budgets"], "s")):
        ax1.errorbar(budgets, c["below"], yerr=c["se"], marker=marker, capsize=2, label=label)
        ax2.plot(budgets, c["ess_fraction"], marker=marker, label=label)
    ax1.set_xscale("log")
    ax1.set_xlabel("decoder evaluations per image")
    ax1.set_ylabel("estimate $-$ reference (nats)")
    ax1.legend(frameon=False)
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("decoder evaluations per image")
    ax2.set_ylabel("ESS / samples (chains)")
    ax3.plot(fits["steps"], fits["elbo_star"], marker="o", label="$q^*$")
    ax3.axhline(fits["elbo_encoder"], linestyle="--", color="grey", label="encoder $q_x$")
    ax3.set_xscale("log")
    ax3.set_xlabel("Adam steps fitting $q^*$")
    ax3.set_ylabel("mean ELBO (nats)")
    ax3.legend(frameon=False)
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.3, linewidth=0.5)
    return fig


def run(cfg: Config, ctx: Context) -> Result:
    q1, q3 = ctx.require("q1"), ctx.require("q3")
    q4cfg = q4.SMOKE if ctx.smoke else q4.Config()
    noise = torch.Generator().manual_seed(ctx.seed + cfg.stream + 1)
    enc, dec = vae.restore(q1, ctx.device)
    dec.requires_grad_(False)
    decode = lambda z: dec(z).flatten(1)  # noqa: E731
    sigma_p, pixel_range = q1["loss"]["sigma_p"], q1["arch"]["pixel_range"]
    timing = {}
    start = time.perf_counter()
    # the ten images of Q4(a): the first training image of each digit Q4 draws
    x = to_float(ctx.data.train.x[q4.chosen_images(ctx, q4cfg)["train"][:, 0]], *pixel_range).to(ctx.device)
    xf = x.flatten(1)
    with torch.no_grad():
        mean, logvar = enc(x)
    m_star, lv_star, _ = fit_diag_gaussian(xf, decode, sigma_p, mean, logvar, q4cfg.fit_steps, q4cfg.fit_samples,
                                           q4cfg.fit_lr, noise)
    ais_raw = ais_sweep(xf, m_star, lv_star, decode, sigma_p, cfg, q4cfg, noise)
    timing["ais_s"] = time.perf_counter() - start
    eq9_raw = eq9_sweep(xf, mean, logvar, decode, sigma_p, cfg, q4cfg.chunk, noise)
    timing["eq9_s"] = time.perf_counter() - start - timing["ais_s"]
    target = ais_raw["est"][-1].mean().item()  # the reference: AIS at the largest T
    ais, eq9 = curve(ais_raw, target), curve(eq9_raw, target)
    flat = plateau(ais["mean"], cfg.plateau_nats)
    chosen = q4cfg.ais_steps
    ais.update({"steps": ais_raw["steps"], "budgets": ais_raw["budgets"], "accept": ais_raw["accept"],
                "on_plateau": flat, "smallest_on_plateau": ais_raw["steps"][flat.index(True)],
                "chosen_steps": chosen,
                "chosen_on_plateau": int(chosen in ais_raw["steps"] and flat[ais_raw["steps"].index(chosen)])})
    eq9["budgets"] = eq9_raw["budgets"]
    # per image: what Eq. 9 gains from M = 1000 to 10^4, and how far it stays below the reference at 10^4
    ref_image = ais_raw["est"][-1].mean(0)  # (B,)
    per_image = {m: e.mean(0) for m, e in zip(eq9_raw["budgets"], eq9_raw["est"])}
    big, small = max(per_image), (1000 if 1000 in per_image else min(per_image))
    gain = per_image[big] - per_image[small]
    eq9["gain"] = {"from": small, "to": big, "min": gain.min().item(), "max": gain.max().item()}
    eq9["below_at_max"] = {"min": (per_image[big] - ref_image).min().item(), "max": (per_image[big] - ref_image).max().item()}
    t = time.perf_counter()
    fit_elbo = fit_curve(xf, decode, sigma_p, mean, logvar, cfg.fit_steps, q4cfg, noise)
    fits = {"steps": list(cfg.fit_steps), "elbo_star": fit_elbo, "chosen_steps": q4cfg.fit_steps,
            "elbo_encoder": elbo(xf, decode, sigma_p, mean, logvar, q4cfg, noise).mean().item()}
    timing["fit_s"] = time.perf_counter() - t
    t = time.perf_counter()
    pick = torch.Generator().manual_seed(ctx.seed + cfg.stream)
    subset = q1["eval_train"][torch.randperm(len(q1["eval_train"]), generator=pick)[: cfg.gap_images]]
    gap = amortization(q1, q3, to_float(ctx.data.train.x[subset.cpu()], *pixel_range).to(ctx.device), cfg, q4cfg,
                       ctx.device, noise)
    timing["gap_s"] = time.perf_counter() - t
    metrics = {"images": len(x), "reference": target, "ais": ais, "eq9": eq9, "fit": fits, "amortization": gap,
               "ais_chains": q4cfg.ais_chains, "ais_leapfrog": q4cfg.ais_leapfrog, "timing": timing}
    return Result(metrics, {"convergence": figure(eq9, ais, fits)})
