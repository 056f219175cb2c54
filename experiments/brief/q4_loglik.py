# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""Q4 of the brief (section 3.4): the log-probability of an image under the amortized VAE.

Question: for each digit take 5 training and 5 test images and compute log p(x) by Eq. 9;
(a) plot one image of each digit with its log p(x); (b) give the average per digit: which digit is
most likely, and why? (c) give the average over training and over test images: are training
images more or less likely?

Method: Eq. 9 with M = 1000 samples z_i ~ q_x from the final Q1 encoder and p(x|z) =
N(G(z), sigma_p^2 I), entirely in log space (``prob.importance_log_weights``, ``torch.logsumexp``),
all images at once with the samples in chunks: the brief's answer. Its importance weights are
degenerate (effective sample size near 1), so beside it stands a reference estimate of the same
log p(x): per image, a diagonal Gaussian q* fitted to the posterior by maximizing the ELBO with the
generator frozen (``prob.fit_diag_gaussian``), then annealed importance sampling from q* to the
posterior with HMC transitions (``prob.ais_log_weights``, Neal 2001; Wu et al. 2017). Its convergence
against the number of annealing steps, with repeats, is shown by ``q4_convergence.py``, which also
chose the budgets here (the smallest on the plateau). Every answer is given under the ELBO, Eq. 9
and the reference; train-test differences come with Welch standard errors stratified by digit.

Rerun: ``python reproduce.py --only q4`` (needs Q1's checkpoint; Q1 runs first when it is stale)
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from experiments.lib import vae
from experiments.lib.contract import Context, DigitGrid, Result
from experiments.lib.data import pick_per_digit, to_float
from experiments.lib.prob import (ais_log_weights, effective_sample_size, fit_diag_gaussian, importance_log_weights,
                   kl_to_standard_normal, log_mean_exp)

SECTION = "q4"
TITLE = "Q4: the log-probability of an image"
REQUIRES = ("q1",)


@dataclass(frozen=True)
class Config:
    per_digit: int = 5  # images of each digit from each split (brief: 5 training and 5 test)
    samples: int = 1000  # M, importance samples per image (Eq. 9)
    chunk: int = 200  # samples decoded at once for all images of a batch (bounds memory)
    image_batch: int = 100  # images evaluated together
    fit_steps: int = 300  # Adam steps fitting q* to each image's posterior (on the ELBO's plateau, q4_convergence)
    fit_samples: int = 4  # reparameterized draws per image and step
    fit_lr: float = 0.05  # Adam's starting learning rate, decayed linearly to zero
    elbo_samples: int = 100  # draws from q* to evaluate its ELBO
    ais_steps: int = 200  # T, annealing steps from q* to the posterior (on the plateau, q4_convergence)
    ais_chains: int = 4  # independent AIS chains per image, averaged in log-mean-exp
    ais_leapfrog: int = 2  # leapfrog steps per HMC transition
    ais_step_size: float = 0.2  # starting HMC step size in whitened coordinates (tuned toward 65% acceptance)
    active_var: float = 0.5  # a latent dimension is informed by the image where q*'s variance is below this
    stream: int = 4  # the images use a generator seeded with seed + stream; all sampling seed + stream + 1


SMOKE = Config(samples=50, chunk=25, fit_steps=20, elbo_samples=10, ais_steps=5, ais_chains=2)

HEADLINE = ("split_mean.train", "mean log p(x), training images (nats)")
TOLERANCES = {"split_mean.train": (1e-3, 10.0), "split_mean.test": (1e-3, 10.0), "difference": (1e-3, 10.0),
              "ref.split_mean.train": (1e-3, 2.0), "ref.split_mean.test": (1e-3, 2.0)}
# integers that select a digit: compared by the mean log p(x) of the digit they name, see pipeline/verify.py
SELECTS = {**{f"{group}.{which}_likely_digit": (f"{group}.per_digit_mean", 0) for which in ("most", "least")
              for group in ("per_digit", "ref", "elbo")},
           # the digits where Eq. 9 falls least and most short of the reference: compared by the shortfall they select
           **{f"bias.digit_{end}": ("bias.per_digit_mean", 0) for end in ("min", "max")}}


def reference(decode, xf: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, sigma_p: float, cfg: Config,
              generator) -> dict[str, torch.Tensor]:
    """The reference log p(x) of images xf (B, D), started from q_x = N(mean, exp(logvar)) (B, d):
    q* fitted to each posterior (ELBO by Adam, generator frozen), its ELBO from ``elbo_samples`` draws,
    then AIS from q* with ``ais_chains`` chains of ``ais_steps`` steps. Returns q*'s mean and logvar
    (B, d); its ELBO, the estimate, the chains' effective sample size and the acceptance rate (B,);
    and the seconds spent fitting and annealing."""
    start = time.perf_counter()
    m_star, lv_star, _ = fit_diag_gaussian(xf, decode, sigma_p, mean, logvar, cfg.fit_steps, cfg.fit_samples,
                                           cfg.fit_lr, generator)
    with torch.no_grad():
        elbo_star = importance_log_weights(xf, m_star, lv_star, decode, sigma_p, cfg.elbo_samples, cfg.chunk,
                                           generator).mean(0)  # E_q* log w = ELBO(q*)
    fit_s = time.perf_counter() - start
    log_big_w, accept = ais_log_weights(xf, decode, sigma_p, m_star, lv_star, cfg.ais_steps, cfg.ais_chains,
                                        cfg.ais_leapfrog, cfg.ais_step_size, generator=generator)
    return {"mean": m_star, "logvar": lv_star, "elbo_star": elbo_star, "ref": log_mean_exp(log_big_w),
            "ref_ess": effective_sample_size(log_big_w), "accept": accept,
            "fit_s": torch.tensor(fit_s), "ais_s": torch.tensor(time.perf_counter() - start - fit_s)}


def posterior_width(mean: torch.Tensor, logvar: torch.Tensor, m_star: torch.Tensor, lv_star: torch.Tensor,
                    active_var: float) -> dict[str, torch.Tensor]:
    """q_x = N(mean, exp(logvar)) against q* in the latent dimensions q* says the image informs (variance
    below ``active_var``), each (B, d), NaN elsewhere: the variance ratio sigma_x^2 / sigma_*^2 and the
    offset |mu_x - mu_*| / sigma_*, in q*'s standard deviations."""
    inactive = lv_star.exp() >= active_var  # (B, d)
    return {"var_ratio": (logvar - lv_star).exp().masked_fill(inactive, float("nan")),
            "offset": ((mean - m_star).abs() * (-0.5 * lv_star).exp()).masked_fill(inactive, float("nan"))}


def width_summary(var_ratio: torch.Tensor, offset: torch.Tensor) -> dict:
    """``posterior_width`` pooled over images and informed dimensions: their number per image, the median
    variance ratio, the share of dimensions where q_x is wider, the median offset (None when none is informed)."""
    informed = ~var_ratio.isnan()
    ratio, off = var_ratio[informed], offset[informed]
    n = informed.flatten(0, -2).sum(1).float()  # (images,)
    if not len(ratio):
        return {"active_median": 0.0, "var_ratio_median": None, "var_ratio_wider": None, "offset_median": None}
    return {"active_median": n.median().item(), "var_ratio_median": ratio.median().item(),
            "var_ratio_wider": (ratio > 1).float().mean().item(), "offset_median": off.median().item()}


def log_likelihoods(enc, dec, x: torch.Tensor, sigma_p: float, cfg: Config, noise,
                    with_reference: bool = False) -> dict[str, torch.Tensor]:
    """Per-image estimates for images x (N, 1, 28, 28), each (N,): Eq. 9 (``log_p``) and the
    effective sample size of its weights, (sum w)^2 / sum w^2 (M when all are equal, 1 when one
    dominates); Eq. 9 from the first M / 10 samples (``log_p_tenth``); the encoder's ELBO (the mean of the same log-weights, E_q log w) and its KL term.
    With ``with_reference``, also the reference (``ref``) and its parts (see ``reference``) and
    q_x against q* (``posterior_width``, (N, d))."""
    parts: dict[str, list] = {}
    decode = lambda z: dec(z).flatten(1)  # noqa: E731  (n, d) -> (n, D)
    for xb in x.split(cfg.image_batch):
        xf = xb.flatten(1)
        with torch.no_grad():
            mean, logvar = enc(xb)
            log_w = importance_log_weights(xf, mean, logvar, decode, sigma_p, cfg.samples, cfg.chunk, noise)
        values = {"log_p": log_mean_exp(log_w), "ess": effective_sample_size(log_w), "elbo": log_w.mean(0),
                  # Eq. 9 from the first M / 10 samples: how much the last 90% add (the estimate's growth with M)
                  "log_p_tenth": log_mean_exp(log_w[: max(1, len(log_w) // 10)]),
                  "kl": kl_to_standard_normal(mean, logvar).sum(1)}
        if with_reference:
            ref = reference(decode, xf, mean, logvar, sigma_p, cfg, noise)
            values.update({k: ref[k] for k in ("ref", "ref_ess", "accept", "elbo_star")},
                          **posterior_width(mean, logvar, ref["mean"], ref["logvar"], cfg.active_var),
                          fit_s=ref["fit_s"].expand(len(xb)) / len(xb), ais_s=ref["ais_s"].expand(len(xb)) / len(xb))
        for key, value in values.items():
            parts.setdefault(key, []).append(value)
    return {key: torch.cat(values).cpu() for key, values in parts.items()}


def summary(log_p: torch.Tensor) -> dict:
    """(10, k) log p per digit and image -> per-digit mean, std, standard error, and the overall mean."""
    k = log_p.shape[1]
    return {"per_digit_mean": log_p.mean(1).tolist(), "per_digit_std": log_p.std(1).tolist(),
            "per_digit_se": (log_p.std(1) / math.sqrt(k)).tolist(), "mean": log_p.mean().item(),
            "most_likely_digit": int(log_p.mean(1).argmax()), "least_likely_digit": int(log_p.mean(1).argmin())}


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two equally shaped tensors, over all their elements."""
    return torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].item()


def ranks(v: torch.Tensor) -> torch.Tensor:
    """Rank of each entry of a 1-D tensor, 0 for the largest."""
    return torch.argsort(torch.argsort(v, descending=True))


def stratified_welch(a: torch.Tensor, b: torch.Tensor) -> dict:
    """mean(a) - mean(b) for (10, k) per-digit samples of each split, equally many per digit, with the
    standard error stratified by digit: sqrt(sum_d (s_ad^2 + s_bd^2) / k) / 10, which leaves the
    differences between digits (the same in both splits) out of the error."""
    k = a.shape[1]
    se = math.sqrt(((a.var(1) + b.var(1)) / k).sum().item()) / a.shape[0]
    diff = (a.mean() - b.mean()).item()
    return {"difference": diff, "difference_se": se, "difference_z": diff / se}


def answers(est: dict, key: str) -> dict:
    """(b) and (c) under one estimator ``key`` ("log_p" Eq. 9, "ref", "elbo"): per-digit summary,
    split means and the stratified train-test difference."""
    both = torch.cat([est["train"][key], est["test"][key]], 1)  # (10, 2k)
    return {**summary(both), "split_mean": {name: e[key].mean().item() for name, e in est.items()},
            **stratified_welch(est["train"][key], est["test"][key])}


def ink_strength(ink: torch.Tensor, log_p: torch.Tensor) -> dict:
    """How well ink (mean pixel intensity) explains log p: r and r^2 over the images, r over the ten
    digit means, and the counter-examples: digits whose rank by least ink and rank by highest
    log p differ by 3 or more places."""
    r = correlation(ink, log_p)
    ink_d, lp_d = ink.mean(1), log_p.mean(1)
    off = (ranks(-ink_d) - ranks(lp_d)).abs()
    return {"r": r, "r2": r * r, "r_digits": correlation(ink_d, lp_d),
            "counter_examples": [d for d in range(10) if off[d] >= 3],
            "least_ink_digit": int(ink_d.argmin()), "most_ink_digit": int(ink_d.argmax())}


def core_metrics(est: dict, both: dict, splits: dict, chosen: dict) -> dict:
    """The numbers Q4 asks for under Eq. 9, the reference and the ELBO, and how far they differ, from
    the training and test estimates ``est`` and their concatenation ``both`` ((10, 2k) per digit)."""
    bias = both["ref"] - both["log_p"]  # (10, 2k) nats Eq. 9 falls short of the reference
    eq9, ref, elbo = answers(est, "log_p"), answers(est, "ref"), answers(est, "elbo")
    spearman = {name: correlation(ranks(torch.tensor(a["per_digit_mean"])).double(),
                                  ranks(torch.tensor(ref["per_digit_mean"])).double()) for name, a in
                (("eq9", eq9), ("elbo", elbo))}
    return {
        "images": {name: {"index": splits[name].index[chosen[name]].tolist(), "log_p": est[name]["log_p"].tolist(),
                          "ess": est[name]["ess"].tolist(), "ref": est[name]["ref"].tolist(),
                          "ref_ess": est[name]["ref_ess"].tolist(), "elbo": est[name]["elbo"].tolist(),
                          "elbo_star": est[name]["elbo_star"].tolist()} for name in splits},
        **{k: eq9[k] for k in ("split_mean", "difference", "difference_se", "difference_z")},
        "per_digit": {k: v for k, v in eq9.items() if k not in ("split_mean", "difference", "difference_se", "difference_z")},
        "ref": ref, "elbo": elbo, "rank_correlation": spearman,
        "bias": {"mean": bias.mean().item(), "per_digit_mean": bias.mean(1).tolist(), "min": bias.min().item(),
                 "max": bias.max().item(), "digit_min": int(bias.mean(1).argmin()), "digit_max": int(bias.mean(1).argmax())},
        "ink_per_digit": both["ink"].mean(1).tolist(),
        "ink": {"eq9": ink_strength(both["ink"], both["log_p"]), "ref": ink_strength(both["ink"], both["ref"])},
        "kl_per_digit": both["kl"].mean(1).tolist(),
        "recon_per_digit": (both["elbo"] + both["kl"]).mean(1).tolist(),
        "elbo_gap": (both["log_p"] - both["elbo"]).mean().item(),
        "ess_median": both["ess"].median().item(), "ess_below_10": (both["ess"] < 10).float().mean().item(),
        "ref_ess_median": both["ref_ess"].median().item(), "accept_mean": both["accept"].mean().item(),
        # Cremer et al. 2018: log p - ELBO(q_x) = [log p - ELBO(q*)] (approximation) + [ELBO(q*) - ELBO(q_x)] (amortization)
        "gaps": {"total": (both["ref"] - both["elbo"]).mean().item(),
                 "amortization": (both["elbo_star"] - both["elbo"]).mean().item(),
                 "approximation": (both["ref"] - both["elbo_star"]).mean().item(),
                 "eq9_below_elbo_star": (both["elbo_star"] - both["log_p"]).mean().item()},
        "width": width_summary(both["var_ratio"], both["offset"]),
    }


def estimate(enc, dec, split, idx: torch.Tensor, q1: dict, cfg: Config, noise) -> dict[str, torch.Tensor]:
    """Every output of ``log_likelihoods`` for the images ``idx`` (10, k) of a split, and the ink
    (mean pixel intensity in [0, 1]) of each image, each shaped (10, k) like idx ((10, k, d) per dimension)."""
    x = to_float(split.x[idx.flatten()], *q1["arch"]["pixel_range"]).to(next(dec.parameters()).device)
    out = {k: v.view(*idx.shape, *v.shape[1:]) for k, v in
           log_likelihoods(enc, dec, x, q1["loss"]["sigma_p"], cfg, noise, with_reference=True).items()}
    out["ink"] = to_float(split.x[idx.flatten()], 0.0, 1.0).mean((1, 2, 3)).view(idx.shape)
    return out


def chosen_images(ctx: Context, cfg: Config) -> dict[str, torch.Tensor]:
    """The (10, per_digit) positions of Q4's images in the training and test splits (seeded)."""
    pick = torch.Generator().manual_seed(ctx.seed + cfg.stream)
    return {name: pick_per_digit(s.y, cfg.per_digit, pick) for name, s in (("train", ctx.data.train), ("test", ctx.data.test))}


def run(cfg: Config, ctx: Context) -> Result:
    q1 = ctx.require("q1")
    enc, dec = vae.restore(q1, ctx.device)
    dec.requires_grad_(False)  # the generator is frozen: only q*'s parameters and the HMC states get gradients
    noise = torch.Generator().manual_seed(ctx.seed + cfg.stream + 1)
    splits = {"train": ctx.data.train, "test": ctx.data.test}
    chosen = chosen_images(ctx, cfg)  # (10, k) each
    start = time.perf_counter()
    est = {name: estimate(enc, dec, s, chosen[name], q1, cfg, noise) for name, s in splits.items()}
    total_s = time.perf_counter() - start
    both = {k: torch.cat([est["train"][k], est["test"][k]], 1) for k in est["train"]}  # (10, 2k) per digit
    fit_s, ais_s = both["fit_s"].sum().item(), both["ais_s"].sum().item()
    metrics = {
        **core_metrics(est, both, splits, chosen),
        "samples": cfg.samples, "per_split": 10 * cfg.per_digit, "n_images": 20 * cfg.per_digit,
        "per_digit_images": 2 * cfg.per_digit, "density_shift_unit_range": vae.density_shift(q1["arch"]["pixel_range"]),
        "timing": {"eq9_s": total_s - fit_s - ais_s, "fit_s": fit_s, "ais_s": ais_s, "ref_s": fit_s + ais_s, "total_s": total_s},
    }
    first = to_float(splits["train"].x[chosen["train"][:, 0]], 0.0, 1.0)[:, 0].numpy()  # (10, 28, 28), one per digit
    labels = tuple(f"{d}\n{est['train']['log_p'][d, 0].item():.1f}\n({est['train']['ref'][d, 0].item():.1f})".replace("-", "\u2212")
                   for d in range(10))
    return Result(metrics, {"examples": DigitGrid(first[None], ("training image",), labels)})
