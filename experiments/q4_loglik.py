"""Q4 of the brief (section 3.4): the log-probability of an image under the amortized VAE.

Question: for each digit take 5 training and 5 test images and compute log p(x) by Eq. 9;
(a) plot one image of each digit with its log p(x); (b) give the average per digit: which digit is
most likely, and why? (c) give the average over training and over test images: are training
images more or less likely?

Method: Eq. 9 with M = 1000 samples z_i ~ q_x from the final Q1 encoder and p(x|z) =
N(G(z), sigma_p^2 I), entirely in log space (``prob.importance_log_weights``, ``torch.logsumexp``),
all images at once with the samples in chunks. The quality of each estimate is measured: the
effective sample size of its importance weights, how much the last 90% of the samples add, and
(beyond what was asked) the estimate with M = 10,000. The difference between training and test
means comes with its Welch standard error. Also beyond what was asked, and marked so in the report,
the same averages over 100 images per digit per split, so that a ranking is not an artefact of five images.

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
from .prob import effective_sample_size, importance_log_weights, kl_to_standard_normal, log_mean_exp, log_mean_exp_se

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
# integers that select a digit: compared by the mean log p(x) of the digit they name, see pipeline/verify.py
SELECTS = {f"{group}.{which}_likely_digit": (f"{group}.per_digit_mean", 0) for which in ("most", "least")
           for group in ("per_digit", "large.both", "large.train", "large.test", "more_samples")}


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
        for key, value in (("log_p", log_mean_exp(log_w)), ("mc_se", log_mean_exp_se(log_w)),
                           ("ess", effective_sample_size(log_w)),
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


def estimate(enc, dec, split, idx: torch.Tensor, q1: dict, cfg: Config, noise) -> dict[str, torch.Tensor]:
    """Eq. 9 for the images ``idx`` (10, k) of a split: every output of ``log_likelihoods`` and the
    ink (mean pixel intensity in [0, 1]) of each image, each shaped (10, k) like idx."""
    x = to_float(split.x[idx.flatten()], *q1["arch"]["pixel_range"]).to(next(dec.parameters()).device)
    out = {k: v.view(idx.shape) for k, v in log_likelihoods(enc, dec, x, q1["loss"]["sigma_p"], cfg, noise).items()}
    out["ink"] = to_float(split.x[idx.flatten()], 0.0, 1.0).mean((1, 2, 3)).view(idx.shape)
    return out


def core_metrics(est: dict, both: dict, splits: dict, chosen: dict) -> dict:
    """The numbers Q4 asks for, and the quality of the estimates, from the training and test estimates
    ``est`` and their concatenation ``both`` ((10, 2k) per digit)."""
    return {
        "images": {name: {"index": splits[name].index[chosen[name]].tolist(), "log_p": est[name]["log_p"].tolist(),
                          "ess": est[name]["ess"].tolist()} for name in splits},
        "per_digit": summary(both["log_p"]),
        "ink_per_digit": both["ink"].mean(1).tolist(),
        "ink_correlation": correlation(both["ink"], both["log_p"]),
        # ELBO = E_q log p(x|z) - KL: its two terms per digit
        "kl_per_digit": both["kl"].mean(1).tolist(),
        "recon_per_digit": (both["elbo"] + both["kl"]).mean(1).tolist(),
        "elbo_gap": (both["log_p"] - both["elbo"]).mean().item(),
        "split_mean": {name: est[name]["log_p"].mean().item() for name in splits},
        **welch(est["train"]["log_p"].flatten(), est["test"]["log_p"].flatten()),
        "mc_se_max": both["mc_se"].max().item(),
        "ess_median": both["ess"].median().item(), "ess_below_10": (both["ess"] < 10).float().mean().item(),
        # log p from all M samples minus log p from the first M / 10: > 0 while the estimate still grows with M
        "gain_last_90pct": (both["log_p"] - both["log_p_tenth"]).mean().item(),
    }


def run(cfg: Config, ctx: Context) -> Result:
    q1 = ctx.require("q1")
    enc, dec = vae.restore(q1, ctx.device)
    pick = torch.Generator().manual_seed(ctx.seed + cfg.stream)
    noise = torch.Generator().manual_seed(ctx.seed + cfg.stream + 1)
    splits = {"train": ctx.data.train, "test": ctx.data.test}
    chosen = {name: pick_per_digit(s.y, cfg.per_digit, pick) for name, s in splits.items()}  # (10, k)
    start = time.perf_counter()
    est = {name: estimate(enc, dec, s, chosen[name], q1, cfg, noise) for name, s in splits.items()}
    core_s = time.perf_counter() - start
    both = {k: torch.cat([est["train"][k], est["test"][k]], 1) for k in est["train"]}  # (10, 2k) per digit
    metrics = {
        **core_metrics(est, both, splits, chosen),
        "samples": cfg.samples, "per_split": 10 * cfg.per_digit, "n_images": 20 * cfg.per_digit,
        "per_digit_images": 2 * cfg.per_digit, "density_shift_unit_range": vae.density_shift(q1["arch"]["pixel_range"]),
        "large": large_sample(enc, dec, q1, cfg, ctx, pick, noise),
        "more_samples": more_samples(enc, dec, q1, cfg, splits, chosen, both["log_p"], noise),
    }
    metrics["timing"] = {"core_s": core_s, "large_s": metrics["large"].pop("seconds"),
                         "more_samples_s": metrics["more_samples"].pop("seconds")}
    first = to_float(splits["train"].x[chosen["train"][:, 0]], 0.0, 1.0)[:, 0].numpy()  # (10, 28, 28), one per digit
    labels = tuple(f"{d}\n{est['train']['log_p'][d, 0].item():.1f}".replace("-", "\u2212") for d in range(10))
    return Result(metrics, {"examples": DigitGrid(first[None], ("training image",), labels)})


def more_samples(enc, dec, q1: dict, cfg: Config, splits: dict, chosen: dict, log_p: torch.Tensor, noise) -> dict:
    """Beyond the brief: Eq. 9 for the same images (log_p (10, 2k) with M = cfg.samples) with
    cfg.check_samples samples; how much it moves."""
    start = time.perf_counter()
    check = dataclasses.replace(cfg, samples=cfg.check_samples)
    more = torch.cat([estimate(enc, dec, s, chosen[name], q1, check, noise)["log_p"] for name, s in splits.items()], 1)
    return {"samples": cfg.check_samples, "mean_shift": (more - log_p).mean().item(),
            "per_digit_mean": more.mean(1).tolist(), "most_likely_digit": int(more.mean(1).argmax()),
            "seconds": time.perf_counter() - start}


def large_sample(enc, dec, q1: dict, cfg: Config, ctx: Context, pick, noise) -> dict:
    """Beyond the brief: the same averages over ``large_per_digit`` images of each digit per split."""
    start = time.perf_counter()
    est = {name: estimate(enc, dec, s, pick_per_digit(s.y, cfg.large_per_digit, pick), q1, cfg, noise)
           for name, s in (("train", ctx.data.train), ("test", ctx.data.test))}
    result = {name: {**summary(e["log_p"]), "ink_correlation": correlation(e["ink"], e["log_p"])} for name, e in est.items()}
    result["both"] = summary(torch.cat([est["train"]["log_p"], est["test"]["log_p"]], 1))
    result.update(welch(est["train"]["log_p"].flatten(), est["test"]["log_p"].flatten()))
    result["per_split"] = 10 * cfg.large_per_digit
    result["per_digit_images"] = 2 * cfg.large_per_digit
    result["seconds"] = time.perf_counter() - start
    return result
