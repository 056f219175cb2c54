# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""Additional findings (brief, section 1: "if you have additional interesting findings"): what the
Eq. 5 aggregation and the pixel scale do to the VAE, how good each generator's samples are, and how
Q3's training compares with Q1's.

Questions: (1) the brief's aggregation is a beta-VAE with beta = 12.25 (see ``vae.py``); what does
the model of the true ELBO (beta = 1) look like? (2) Under the brief's loss, how much does scaling
the pixels to [0, 1] instead of [-1, 1] change posterior collapse? (3) Which generators make digits
from prior samples, as judged by measures that are first shown to rank real digits above known-bad sets?

Method: the two extra VAEs (sections ``extra_beta``, ``extra_range``) and Q1's: active units, KL,
reconstruction error and log p(x) (Eq. 9, M = 1000, and with M / 10 to show the estimator's bias still
shrinking) of validation images, all in the units of [0, 1] pixels with a likelihood of the same
absolute width (sigma = 0.2 there, i.e. sigma_p = 0.4 on [-1, 1]) so that the models compare. For them
and every Q3 generator (``q3``, ``q3x_sparse``, ``q3x_rowadam``, ``q3x_long``): 1000 decoded prior
samples scored by the Frechet distance and k-NN precision/recall on the supervised CNN's features
(``sample_metrics``), both validated here on held-out digits and known-bad sets; pixel diversity; the
CNN's labels. And the training -ELBO per epoch of Q1 and of every Q3 run on one axis.

Rerun: ``python reproduce.py --only extra`` (needs every section it lists in REQUIRES)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.ticker import MaxNLocator
import torch

from experiments.brief import q1_vae, q3_latent_opt
from experiments.lib import sample_metrics, vae
from experiments.lib.contract import Context, DigitGrid, Result
from experiments.lib.data import pick_per_digit, to_float
from experiments.lib.plotting import new_figure, plot_curves
from experiments.brief.q2_sampling import pixel_diversity
from experiments.brief.q4_loglik import Config as LikelihoodConfig, log_likelihoods
from experiments.lib.runtime import map_batches

SECTION = "extra"
TITLE = "Additional findings"
REQUIRES = ("sup", "q1", "q3", "q3x_sparse", "q3x_rowadam", "q3x_long", "extra_beta", "extra_range")
UNIT_SIGMA = 0.2  # likelihood width in [0, 1] pixel units for every comparison (= 0.4 on [-1, 1])
VAES = {"q1": "q1", "true_elbo": "extra_beta", "unit_range": "extra_range"}  # model name -> its section
Q3_RUNS = {"q3": "q3", "q3_sparse": "q3x_sparse", "q3_row_adam": "q3x_rowadam", "q3_long": "q3x_long"}
LABELS = {"q1": "Q1 (Eq. 5, [\u22121, 1])", "true_elbo": "true ELBO", "unit_range": "pixels in [0, 1]",
          "q3": "Q3, Adam", "q3_sparse": "Q3, SparseAdam", "q3_row_adam": "Q3, Adam per row", "q3_long": "Q3, Adam, longer"}


@dataclass(frozen=True)
class Config:
    loglik_per_digit: int = 20  # validation images of each digit whose log p(x) is estimated per model
    samples: int = 1000  # M of Eq. 9
    prior_samples: int = 1000  # latents z ~ N(0, I) decoded by each generator and scored
    reference_per_digit: int = 100  # validation images of each digit as the real reference, and as many held out
    k: int = 3  # neighbours that set the k-NN radii of precision and recall (Kynkaanniemi et al. use 3)
    stream: int = 5  # images, importance samples and prior latents use generators seeded from seed + stream


SMOKE = Config(loglik_per_digit=2, samples=50, prior_samples=100, reference_per_digit=10)

HEADLINE = ("models.true_elbo.active_units", "active units with the true ELBO")
TOLERANCES = {"models.q1.log_p": (1e-3, 10.0), "models.true_elbo.log_p": (1e-3, 10.0),
              "models.unit_range.log_p": (1e-3, 10.0)}


def assess(enc, dec, pixel_range, x01: torch.Tensor, cfg: Config, seed: int, noise) -> dict:
    """Active units, KL, reconstruction MSE, ELBO and log p(x) (M and M / 10) of validation images x01 in [0, 1] units."""
    lo, hi = pixel_range
    x = lo + (hi - lo) * x01
    sigma = UNIT_SIGMA * (hi - lo)
    terms = vae.per_image(enc, dec, x, sigma, seed, 1000)
    s = vae.summarize(terms, 1.0, q1_vae.Config.active_threshold)
    est = log_likelihoods(enc, dec, x, sigma, LikelihoodConfig(samples=cfg.samples), noise)
    shift = vae.density_shift(pixel_range)
    return {"active_units": s["active_units"], "kl_units_90": s["kl_units_90"], "kl_nats": s["kl_nats"],
            "recon_mse": vae.recon_error(dec, terms["mean"], x, 1000) / (hi - lo) ** 2,
            "log_p": est["log_p"].mean().item() + shift, "log_p_tenth": est["log_p_tenth"].mean().item() + shift,
            "elbo": est["elbo"].mean().item() + shift}


@torch.no_grad()
def judge(classifier, reference_f: torch.Tensor, images01: torch.Tensor, k: int) -> dict:
    """Frechet distance and precision/recall against the reference, pixel diversity, and the CNN's labels
    (share of each digit, mean top probability), of decoded prior samples in [0, 1] (S, 1, 28, 28)."""
    probs = sample_metrics.cnn_probs(classifier, images01)  # (S, 10)
    top, label = probs.max(1)
    share = torch.bincount(label, minlength=10).double() / len(label)
    return {**sample_metrics.score(reference_f, sample_metrics.cnn_features(classifier, images01), k),
            "diversity": pixel_diversity(images01[:100]), "label_share": share.tolist(),
            "top_label_share": share.max().item(), "confidence": top.mean().item()}


def elbo_figure(curves: dict[str, list[float]], first_long: int):
    """Training -ELBO per epoch (nats per image, one axis) of Q1 and of every Q3 run."""
    fig, (ax,) = new_figure(1, width_in=3.4, height_in=2.3)
    plot_curves(ax, curves, ylabel="training \u2212ELBO (nats / image)")
    ax.get_legend().remove()  # below the axes instead: any place inside hid a curve
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=2, frameon=False)
    ax.axvline(first_long - 0.5, color="0.5", linewidth=0.6)
    ticks = MaxNLocator(nbins=8).tick_values(*ax.get_ylim())
    ax.set_yticks(ticks)  # ticks over the whole range, from a tick below the lowest curve to one above the highest
    ax.set_ylim(ticks[0], ticks[-1])
    ax.set_title("Q1 and Q3, training \u2212ELBO per epoch")
    return fig


def run(cfg: Config, ctx: Context) -> Result:
    up = {name: ctx.require(name) for name in REQUIRES}
    classifier = sample_metrics.load_classifier(up["sup"], ctx.device)
    pick = torch.Generator().manual_seed(ctx.seed + cfg.stream)
    val01 = lambda idx: to_float(ctx.data.val.x[idx.flatten()], 0.0, 1.0).to(ctx.device)  # noqa: E731
    x01 = val01(pick_per_digit(ctx.data.val.y, cfg.loglik_per_digit, pick))
    real = pick_per_digit(ctx.data.val.y, 2 * cfg.reference_per_digit, pick)  # (10, 2r): reference | held out
    reference_f = sample_metrics.cnn_features(classifier, val01(real[:, :cfg.reference_per_digit]))
    validation = sample_metrics.validate(reference_f, val01(real[:, cfg.reference_per_digit:]), classifier, pick, cfg.k)
    z = torch.randn(cfg.prior_samples, up["q1"]["arch"]["latent_dim"], generator=pick).to(ctx.device)
    z[:10] = vae.prior_latents(10, z.shape[1], ctx.seed).to(ctx.device)  # the first ten are Q2's, so the grid matches Q2's figure
    vaes = {name: (*vae.restore(up[sec], ctx.device), tuple(up[sec]["arch"]["pixel_range"])) for name, sec in VAES.items()}
    generators = {**{name: (dec, rng) for name, (_, dec, rng) in vaes.items()},
                  **{name: (vae.restore_decoder(up[sec]["arch"], up[sec]["decoder"], ctx.device),
                            tuple(up[sec]["arch"]["pixel_range"])) for name, sec in Q3_RUNS.items()}}
    noise = torch.Generator().manual_seed(ctx.seed + cfg.stream + 1)
    judged, rows = {}, []
    for name, (dec, (lo, hi)) in generators.items():
        with torch.no_grad():
            images01 = ((dec(z) - lo) / (hi - lo)).clamp(0, 1)  # (S, 1, 28, 28)
        rows.append(images01[:10, 0].cpu().numpy())
        judged[name] = judge(classifier, reference_f, images01, cfg.k)
        if name in vaes:
            judged[name].update(assess(vaes[name][0], dec, (lo, hi), x01, cfg, ctx.seed + 1, noise))
    q1 = up["q1"]
    x_train = to_float(ctx.data.train.x, *q1["arch"]["pixel_range"]).to(ctx.device)
    q1_codes = map_batches(vaes["q1"][0], x_train, batch_size=1000)  # (mu, logvar) of every training image
    long = up["q3x_long"]["history"]["neg_elbo"]
    curves = {"Q1 (amortized)": q1["history"]["neg_elbo"], "Q3, Adam (30, then longer)": long,
              "Q3, SparseAdam": up["q3x_sparse"]["history"]["neg_elbo"],
              "Q3, Adam per row": up["q3x_rowadam"]["history"]["neg_elbo"]}
    first_long = len(up["q3"]["history"]["neg_elbo"]) + 1
    betas = {name: vae.effective_kl_weight(up[sec]["loss"]["sigma_p"], up[sec]["arch"]["latent_dim"], up[sec]["loss"]["kl_weight"])
             for name, sec in VAES.items()}
    metrics = {"models": judged, "labels": {name: LABELS[name] for name in generators}, "betas": betas,
               "kl_weights": {name: up[sec]["loss"]["kl_weight"] for name, sec in VAES.items()},
               "validation": validation, "latent_stats_q1": q3_latent_opt.aggregate_fit(*q1_codes),
               "q3_long_first_epoch": first_long, "unit_sigma": UNIT_SIGMA, "images": len(x01),
               "samples": cfg.samples, "prior_samples": cfg.prior_samples, "reference": len(reference_f), "k": cfg.k}
    grid = DigitGrid(np.stack(rows), tuple(LABELS[name] for name in generators), tuple(f"z{i + 1}" for i in range(10)))
    return Result(metrics, {"samples": grid, "elbo": elbo_figure(curves, first_long)})
