"""Q4 of the brief (section 3.4): the log-probability of an image under the amortized VAE.

Question: for each digit take 5 training and 5 test images and compute log p(x) by Eq. 9;
(a) plot one image of each digit with its log p(x); (b) give the average per digit: which digit is
most likely, and why? (c) give the average over training and over test images: are training
images more or less likely?

Method: Eq. 9 with M = 1000 samples z_i ~ q_x from the final Q1 encoder and p(x|z) =
N(G(z), sigma_p^2 I), entirely in log space (``prob.importance_log_weights``, ``torch.logsumexp``),
all images at once with the samples in chunks. Each estimate carries its Monte Carlo standard
error (delta method on the importance weights). The difference between training and test means
comes with its Welch standard error. Beyond what was asked, and marked so in the report, the same
averages over 100 images per digit per split, so that a ranking is not an artefact of five images.

Rerun: ``python reproduce.py --only q4`` (needs Q1's checkpoint; Q1 runs first when it is stale)
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import torch

from . import vae
from .contract import Context, DigitGrid, Result
from .data import pick_per_digit, to_float
from .plotting import to_unit_range
from .prob import importance_log_weights, kl_to_standard_normal, log_mean_exp, log_mean_exp_se

SECTION = "q4"
TITLE = "Q4: the log-probability of an image"
REQUIRES = ("q1",)


@dataclass(frozen=True)
class Config:
    per_digit: int = 5  # images of each digit from each split (brief: 5 training and 5 test)
    samples: int = 1000  # M, importance samples per image (Eq. 9)
    chunk: int = 200  # samples decoded at once for all images of a batch (bounds memory)
    image_batch: int = 100  # images evaluated together
    large_per_digit: int = 100  # beyond the brief: images of each digit per split for the larger sample
    check_samples: int = 10000  # beyond the brief: M again for the same images, to see how far the estimate moves
    stream: int = 4  # images and importance samples use generators seeded with seed + stream


SMOKE = Config(samples=50, chunk=25, large_per_digit=10, check_samples=200)

HEADLINE = ("split_mean.train", "mean log p(x), training images (nats)")
TOLERANCES = {"split_mean.train": (1e-3, 10.0), "split_mean.test": (1e-3, 10.0), "difference": (1e-3, 10.0)}


@torch.no_grad()
def log_likelihoods(enc, dec, x: torch.Tensor, sigma_p: float, cfg: Config, generator) -> dict[str, torch.Tensor]:
    """Eq. 9 for images x (N, 1, 28, 28), each result (N,): log p(x); its delta-method standard error;
    the effective sample size of the importance weights, (sum w)^2 / sum w^2 (M when all are equal,
    1 when one dominates, where the standard error means nothing); the estimate from the first tenth
    of the samples (if log p still grows with M, the estimate has not converged); the ELBO (the mean
    of the same log-weights, E_q log w = ELBO) and its KL term."""
    parts: dict[str, list] = {"log_p": [], "mc_se": [], "ess": [], "log_p_tenth": [], "elbo": [], "kl": []}
    decode = lambda z: dec(z).flatten(1)  # noqa: E731  (n, d) -> (n, D)
    for xb in x.split(cfg.image_batch):
        mean, logvar = enc(xb)
        log_w = importance_log_weights(xb.flatten(1), mean, logvar, decode, sigma_p, cfg.samples, cfg.chunk, generator)
        ess = torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0))
        for key, value in (("log_p", log_mean_exp(log_w)), ("mc_se", log_mean_exp_se(log_w)), ("ess", ess),
                           ("log_p_tenth", log_mean_exp(log_w[: max(1, len(log_w) // 10)])),
                           ("elbo", log_w.mean(0)), ("kl", kl_to_standard_normal(mean, logvar).sum(1))):
            parts[key].append(value)
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


def welch(a: torch.Tensor, b: torch.Tensor) -> dict:
    """mean(a) - mean(b) with its standard error sqrt(s_a^2 / n_a + s_b^2 / n_b)."""
    se = math.sqrt(a.var().item() / a.numel() + b.var().item() / b.numel())
    diff = (a.mean() - b.mean()).item()
    return {"difference": diff, "difference_se": se, "difference_z": diff / se}


def run(cfg: Config, ctx: Context) -> Result:
    q1 = ctx.require("q1")
    enc, dec = vae.restore(q1, ctx.device)
    lo, hi = q1["arch"]["pixel_range"]
    pick = torch.Generator().manual_seed(ctx.seed + cfg.stream)
    noise = torch.Generator().manual_seed(ctx.seed + cfg.stream + 1)
    splits = {"train": ctx.data.train, "test": ctx.data.test}
    chosen = {name: pick_per_digit(s.y, cfg.per_digit, pick) for name, s in splits.items()}  # (10, k)
    start = time.perf_counter()
    est = {}
    for name, s in splits.items():
        x = to_float(s.x[chosen[name].flatten()], lo, hi).to(ctx.device)
        est[name] = {k: v.view(10, -1) for k, v in log_likelihoods(enc, dec, x, q1["loss"]["sigma_p"], cfg, noise).items()}
        est[name]["ink"] = (s.x[chosen[name]].float() / 255).mean((-1, -2))  # (10, k) mean pixel intensity in [0, 1]
    core_s = time.perf_counter() - start
    log_p, mc_se = {n: e["log_p"] for n, e in est.items()}, {n: e["mc_se"] for n, e in est.items()}
    # per digit over both splits, (10, 2k): training images then test images
    both = {k: torch.cat([est["train"][k], est["test"][k]], 1) for k in est["train"]}
    metrics = {
        "images": {name: {"index": splits[name].index[chosen[name]].tolist(), "log_p": log_p[name].tolist(),
                          "mc_se": mc_se[name].tolist(), "ess": est[name]["ess"].tolist()} for name in splits},
        "per_digit": summary(both["log_p"]),
        "ink_per_digit": both["ink"].mean(1).tolist(),
        "ink_correlation": correlation(both["ink"], both["log_p"]),
        # ELBO = E_q log p(x|z) - KL: its two terms per digit
        "kl_per_digit": both["kl"].mean(1).tolist(),
        "recon_per_digit": (both["elbo"] + both["kl"]).mean(1).tolist(),
        "gap_per_digit": (both["log_p"] - both["elbo"]).mean(1).tolist(),
        "elbo_gap": (both["log_p"] - both["elbo"]).mean().item(),
        "split_mean": {name: log_p[name].mean().item() for name in splits},
        **welch(log_p["train"].flatten(), log_p["test"].flatten()),
        "mc_se_max": max(se.max().item() for se in mc_se.values()),
        "ess_median": both["ess"].median().item(), "ess_min": both["ess"].min().item(),
        "ess_below_10": (both["ess"] < 10).float().mean().item(),
        # log p from all M samples minus log p from the first M / 10: > 0 while the estimate still grows with M
        "gain_last_90pct": (both["log_p"] - both["log_p_tenth"]).mean().item(),
        "samples": cfg.samples, "per_split": 10 * cfg.per_digit, "n_images": 20 * cfg.per_digit,
        "per_digit_images": 2 * cfg.per_digit,
        "density_shift_unit_range": vae.PIXELS * math.log(hi - lo),
        "large": large_sample(enc, dec, q1, cfg, ctx, pick, noise),
        "more_samples": more_samples(enc, dec, q1, cfg, ctx, chosen, both["log_p"], noise),
        "timing": {"core_s": core_s},
    }
    metrics["timing"]["large_s"] = metrics["large"].pop("seconds")
    metrics["timing"]["more_samples_s"] = metrics["more_samples"].pop("seconds")
    first = torch.stack([to_float(splits["train"].x[chosen["train"][d, 0]][None], lo, hi)[0, 0] for d in range(10)])
    labels = tuple(f"{d}\n{log_p['train'][d, 0].item():.1f}".replace("-", "\u2212") for d in range(10))
    figure = DigitGrid(to_unit_range(first[None], lo, hi), ("training image",), labels)
    return Result(metrics, {"examples": figure})


def more_samples(enc, dec, q1: dict, cfg: Config, ctx: Context, chosen: dict, log_p: torch.Tensor, noise) -> dict:
    """Beyond the brief: Eq. 9 for the same images with cfg.check_samples samples; how much it moves."""
    start = time.perf_counter()
    lo, hi = q1["arch"]["pixel_range"]
    check = dataclasses.replace(cfg, samples=cfg.check_samples)
    values = []
    for name, s in (("train", ctx.data.train), ("test", ctx.data.test)):
        x = to_float(s.x[chosen[name].flatten()], lo, hi).to(ctx.device)
        values.append(log_likelihoods(enc, dec, x, q1["loss"]["sigma_p"], check, noise)["log_p"].view(10, -1))
    more = torch.cat(values, 1)  # (10, 2k), the layout of log_p
    return {"samples": cfg.check_samples, "mean_shift": (more - log_p).mean().item(),
            "per_digit_mean": more.mean(1).tolist(), "most_likely_digit": int(more.mean(1).argmax()),
            "seconds": time.perf_counter() - start}


def large_sample(enc, dec, q1: dict, cfg: Config, ctx: Context, pick, noise) -> dict:
    """Beyond the brief: the same averages over ``large_per_digit`` images of each digit per split."""
    start = time.perf_counter()
    lo, hi = q1["arch"]["pixel_range"]
    out = {}
    for name, s in (("train", ctx.data.train), ("test", ctx.data.test)):
        idx = pick_per_digit(s.y, cfg.large_per_digit, pick)
        x = to_float(s.x[idx.flatten()], lo, hi).to(ctx.device)
        lp = log_likelihoods(enc, dec, x, q1["loss"]["sigma_p"], cfg, noise)["log_p"].view(10, -1)
        ink = (s.x[idx].float() / 255).mean((-1, -2))  # (10, k)
        out[name] = {**summary(lp), "ink_correlation": correlation(ink, lp), "values": lp}
    result = {name: {k: v for k, v in out[name].items() if k != "values"} for name in out}
    result["both"] = summary(torch.cat([out["train"]["values"], out["test"]["values"]], 1))
    result.update(welch(out["train"]["values"].flatten(), out["test"]["values"].flatten()))
    result["per_split"] = 10 * cfg.large_per_digit
    result["per_digit_images"] = 2 * cfg.large_per_digit
    result["seconds"] = time.perf_counter() - start
    return result
