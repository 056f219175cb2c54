"""Companion, gradient estimators: Toronto CSC412/2506 (section 7, "Investigating Gradient Estimators") and the Stanford
STATS305C question of why a Bernoulli latent breaks the reparameterisation gradient (assignment 6, Problem 4).

Questions: estimate the gradient of the ELBO in the first component of the variational mean many
times with the score function and with reparameterisation; histograms, means (both unbiased) and
variances. Why can a discrete latent not be reparameterised, and what can be done instead?

Method. (1) One test image, q = N(mu, diag sigma^2) from tor_vae's encoder. The Gaussian entropy does
not depend on mu, so d ELBO / d mu_1 = d/d mu_1 E_q[log p(x, z)]: the score function estimates it by
log p(x, z) (z_1 - mu_1) / sigma_1^2, also with the constant baseline log p(x, mu) subtracted
(unbiased, since E_q[score] = 0), reparameterisation by d/dz_1 log p(x, z) at z = mu + sigma eps
(``prob.score_function_grads``, ``prob.reparameterization_grads``). (2) The closed-form case
f(z) = z^2, q = N(mu, s^2): both average 2 mu; per sample the score-function variance is
mu^4/s^2 + 14 mu^2 + 15 s^2 and the reparameterisation variance 4 s^2 (derived in the companion).
(3) A Bernoulli latent b ~ Bern(sigmoid(l)), f(b) = (b - target)^2: the exact derivative in l,
(f(1) - f(0)) p (1 - p), against the pathwise derivative of b = 1[u > 1 - p] (zero wherever it
exists; measured by a central difference), the score function f(b) (b - p), and the binary
Concrete relaxation at several temperatures.

Rerun: ``python reproduce.py --only tor_grad`` (runs tor_vae first when its checkpoint is stale)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from experiments.lib import mlp_vae
from experiments.courses.toronto import vae as tor_vae
from experiments.lib.contract import Context, Result
from experiments.lib.plotting import new_figure
from experiments.lib.prob import bernoulli_score, binary_concrete_sample, reparameterization_grads, score_function_grads

SECTION = "tor_grad"
TITLE = "Toronto CSC412 and Stanford STATS305C: gradient estimators"
REQUIRES = ("tor_vae",)


@dataclass(frozen=True)
class Config:
    image: int = 0  # position of the test image among tor_vae's check images
    estimates: int = 10000  # independent single-sample estimates of each estimator
    closed_mu: float = 1.0  # mu of the closed-form case q = N(mu, s^2), f(z) = z^2
    closed_sigma: float = 0.5  # s of that case
    closed_estimates: int = 200000  # estimates for the closed-form check
    bern_p: float = 0.3  # p = sigmoid(l) of the Bernoulli latent
    bern_target: float = 0.45  # f(b) = (b - target)^2
    temperatures: tuple[float, ...] = (1.0, 0.5, 0.1)  # binary Concrete temperatures
    bern_estimates: int = 200000  # estimates for the Bernoulli case
    bins: int = 60  # histogram bins
    stream: int = 30  # generators seeded with seed + stream + k


SMOKE = Config(estimates=500, closed_estimates=5000, bern_estimates=5000, bins=20)

HEADLINE = ("elbo_grad.variance_ratio", "score-function / reparameterisation variance")
TOLERANCES = {"elbo_grad.variance_ratio": (1e-4, 1e6)}


def summary(g: torch.Tensor) -> dict:
    """Mean, its standard error and the variance of single-sample estimates g (n,)."""
    n = len(g)
    # the variance's standard error from the spread of (g - mean)^2
    return {"mean": g.mean().item(), "se": (g.std() / math.sqrt(n)).item(), "var": g.var().item(),
            "var_se": (((g - g.mean()) ** 2).std() / math.sqrt(n)).item()}


def run(cfg: Config, ctx: Context) -> Result:
    model = mlp_vae.restore(ctx.require("tor_vae"), torch.device("cpu"))
    tv = tor_vae.SMOKE if ctx.smoke else tor_vae.Config()
    x = tor_vae.check_images(tv, ctx)[0][cfg.image:cfg.image + 1]  # (1, 784)
    gen = torch.Generator().manual_seed(ctx.seed + cfg.stream)
    with torch.no_grad():
        mean, logvar = (t[0] for t in model.encode(x))  # (d,) each
    joint = model.log_joint(x)

    def log_p(z):  # (n, d) -> (n,)
        return joint(z.unsqueeze(1)).squeeze(1)

    # ---- (1) the ELBO's gradient in mu_1
    eps = torch.randn(cfg.estimates, mean.shape[-1], generator=gen)
    with torch.no_grad():
        baseline = log_p(mean.unsqueeze(0)).item()
    grads = {"score function": score_function_grads(log_p, mean, logvar, eps)[:, 0],
             "score function, baseline": score_function_grads(lambda z: log_p(z) - baseline, mean, logvar, eps)[:, 0],
             "reparameterisation": reparameterization_grads(log_p, mean, logvar, eps)[:, 0]}
    stats = {k: summary(g) for k, g in grads.items()}
    fig, axes = new_figure(3, 6.6, 1.9)
    for ax, (name, g) in zip(axes, grads.items()):
        ax.hist(g.numpy(), bins=cfg.bins, color="0.55")
        ax.axvline(stats[name]["mean"], color="C3", linewidth=0.8)
        ax.set_title(f"{name}\nmean {stats[name]['mean']:.2f}, variance {stats[name]['var']:.3g}")
        ax.set_xlabel(r"estimate of $\partial\,\mathrm{ELBO} / \partial \mu_1$")
    axes[0].set_ylabel("count")

    # ---- (2) the closed form: f(z) = z^2
    mu, s = cfg.closed_mu, cfg.closed_sigma
    m, lv = torch.tensor([mu], dtype=torch.float64), torch.tensor([2 * math.log(s)], dtype=torch.float64)
    eps2 = torch.randn(cfg.closed_estimates, 1, generator=gen, dtype=torch.float64)
    square = lambda z: (z ** 2).sum(-1)  # noqa: E731
    closed = {
        "score function": {**summary(score_function_grads(square, m, lv, eps2)[:, 0]),
                           "exact_var": mu ** 4 / s ** 2 + 14 * mu ** 2 + 15 * s ** 2},
        "reparameterisation": {**summary(reparameterization_grads(square, m, lv, eps2)[:, 0]), "exact_var": 4 * s ** 2},
    }

    # ---- (3) a Bernoulli latent
    p, target = cfg.bern_p, cfg.bern_target
    logit = torch.tensor(math.log(p / (1 - p)), dtype=torch.float64)
    f = lambda b: (b - target) ** 2  # noqa: E731
    exact = (f(1.0) - f(0.0)) * p * (1 - p)
    u = torch.rand(cfg.bern_estimates, generator=gen, dtype=torch.float64)
    b = (u > 1 - p).double()  # the hard sample: a step function of l, derivative 0 wherever it exists
    # its pathwise derivative in l by a central difference: 0 unless u lies within the step of the jump
    h = 1e-6
    p_up, p_down = torch.sigmoid(logit + h), torch.sigmoid(logit - h)
    pathwise = (f((u > 1 - p_up).double()) - f((u > 1 - p_down).double())) / (2 * h)
    bern = {"score function": summary(f(b) * bernoulli_score(b, logit))}
    for t in cfg.temperatures:
        logits = logit.expand(len(u)).clone().requires_grad_(True)
        (g,) = torch.autograd.grad(f(binary_concrete_sample(logits, t, u)).sum(), logits)
        bern[f"concrete, temperature {t:g}"] = summary(g)
    for v in bern.values():
        v["bias"] = v["mean"] - exact
    concrete = [bern[f"concrete, temperature {t:g}"] for t in sorted(cfg.temperatures, reverse=True)]
    metrics = {
        "image_digit": int(tor_vae.check_images(tv, ctx)[1][cfg.image]),
        "q_sd_1": math.exp(0.5 * logvar[0].item()), "baseline": baseline,
        "elbo_grad": {"estimators": stats, "variance_ratio": stats["score function"]["var"] / stats["reparameterisation"]["var"],
                      "baseline_variance_ratio": stats["score function, baseline"]["var"] / stats["reparameterisation"]["var"],
                      # both unbiased: the difference of their means in combined standard errors (|z| < 2 is consistent)
                      "means_apart_se": (stats["score function"]["mean"] - stats["reparameterisation"]["mean"])
                      / math.hypot(stats["score function"]["se"], stats["reparameterisation"]["se"]),
                      "baseline_means_apart_se": (stats["score function, baseline"]["mean"] - stats["reparameterisation"]["mean"])
                      / math.hypot(stats["score function, baseline"]["se"], stats["reparameterisation"]["se"])},
        "closed_form": closed,
        "closed_form_agrees": all(abs(v["var"] - v["exact_var"]) < 4 * v["var_se"] for v in closed.values()),
        "bernoulli": {"exact": exact, "pathwise_hard": pathwise.mean().item(), "pathwise_nonzero": int((pathwise != 0).sum()), "pathwise_var": pathwise.var().item(),
                      "estimators": bern,
                      # as the temperature falls: |bias| shrinks and the variance grows, step by step
                      "bias_shrinks": all(abs(a["bias"]) > abs(c["bias"]) for a, c in zip(concrete, concrete[1:])),
                      "variance_grows": all(a["var"] < c["var"] for a, c in zip(concrete, concrete[1:]))},
    }
    return Result(metrics, {"hist": fig})
