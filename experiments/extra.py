"""Additional findings (brief, section 1: "if you have additional interesting findings"): what the
Eq. 5 aggregation and the pixel scale do to the VAE, and how good each generator's samples are.

Questions: (1) the brief's aggregation is a beta-VAE with beta = 12.25 (see ``vae.py``); what does
the model of the true ELBO (beta = 1) look like? (2) Under the brief's loss, how much does scaling
the pixels to [0, 1] instead of [-1, 1] change posterior collapse? (3) Which generators make
recognisable digits from prior samples?

Method: two more VAEs exactly as Q1 but for one change each (KL weight 1 / 12.25; pixels in [0, 1]),
and Q3 once more with an exact per-row Adam for the q vectors instead of SparseAdam.
For them and Q1's model: active units, KL and log p(x) (Eq. 9, M = 1000) of validation images, and
the reconstruction error, all in the units of [0, 1] pixels with a likelihood of the same absolute
width (sigma = 0.2 there, i.e. sigma_p = 0.4 on [-1, 1]) so that the models compare. For them and for
Q3's generator: the supervised CNN of section 2 classifies decoded prior samples; its confidence
measures how digit-like they are, and the entropy of its predicted labels how many digits appear.

Rerun: ``python reproduce.py --only extra`` (needs sup, Q1, Q2 and Q3)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from . import q1_vae, q3_latent_opt, vae
from .contract import Context, DigitGrid, Result
from .data import pick_per_digit, to_float
from .q2_sampling import pixel_diversity
from .q4_loglik import Config as LikelihoodConfig, log_likelihoods
from .sup_classification import build_cnn

SECTION = "extra"
TITLE = "Additional findings"
REQUIRES = ("sup", "q1", "q2", "q3")
UNIT_SIGMA = 0.2  # likelihood width in [0, 1] pixel units for every comparison (= 0.4 on [-1, 1])


@dataclass(frozen=True)
class Config:
    epochs: int = 30  # epochs of each extra VAE, as Q1
    loglik_per_digit: int = 20  # validation images of each digit whose log p(x) is estimated per model
    samples: int = 1000  # M of Eq. 9
    prior_samples: int = 1000  # latents z ~ N(0, I) decoded by each generator and classified
    confident: float = 0.9  # a sample is a clear digit when the CNN's top class probability exceeds this
    stream: int = 5  # images, importance samples and prior latents use generators seeded from seed + stream


SMOKE = Config(epochs=2, loglik_per_digit=2, samples=50, prior_samples=100)

HEADLINE = ("models.true_elbo.active_units", "active units with the true ELBO")
TOLERANCES = {"models.q1.log_p": (1e-3, 10.0), "models.true_elbo.log_p": (1e-3, 10.0),
              "models.unit_range.log_p": (1e-3, 10.0)}


def variants(base: q1_vae.Config) -> dict[str, q1_vae.Config]:
    """Q1's configuration with one change each; no snapshots are needed."""
    true_weight = 1.0 / vae.effective_kl_weight(base.sigma_p, base.latent_dim)  # beta = 1
    return {"true_elbo": dataclasses.replace(base, kl_weight=true_weight, snapshot_epochs=()),
            "unit_range": dataclasses.replace(base, pixel_range=(0.0, 1.0), snapshot_epochs=())}


@torch.no_grad()
def classify(classifier, images01: torch.Tensor, confident: float) -> dict:
    """The supervised CNN on images in [0, 1] (N, 1, 28, 28): mean top probability, share above
    ``confident``, entropy of the predicted-label histogram (nats; log 10 when all digits are equal),
    the classifier score exp(E_x KL(p(y|x) || p(y))) (1: one class or no confidence; 10: ten equally
    frequent, confidently recognised digits; the Inception score with our CNN), and pixel diversity."""
    probs = torch.softmax(classifier(2 * images01 - 1), dim=1)  # (N, 10); the CNN was trained on [-1, 1]
    top, label = probs.max(1)
    hist = torch.bincount(label, minlength=10).float() / len(label)
    entropy = max(0.0, -(hist[hist > 0] * hist[hist > 0].log()).sum().item())
    marginal = probs.mean(0)  # p(y)
    kl = (probs * (probs.clamp_min(1e-12).log() - marginal.clamp_min(1e-12).log())).sum(1)  # (N,)
    return {"confidence": top.mean().item(), "confident_share": (top > confident).float().mean().item(),
            "label_entropy": entropy, "label_share": hist.tolist(), "classifier_score": kl.mean().exp().item(),
            "diversity": pixel_diversity(images01[:100])}


def assess(enc, dec, pixel_range, x01: torch.Tensor, cfg: Config, seed: int, noise) -> dict:
    """Active units, KL, reconstruction MSE and log p(x) of validation images x01 in [0, 1] units."""
    lo, hi = pixel_range
    x = lo + (hi - lo) * x01
    sigma = UNIT_SIGMA * (hi - lo)
    terms = vae.per_image(enc, dec, x, sigma, seed, 1000)
    s = vae.summarize(terms, 1.0, q1_vae.Config.active_threshold)
    log_p = log_likelihoods(enc, dec, x, sigma, LikelihoodConfig(samples=cfg.samples), noise)["log_p"]
    return {"active_units": s["active_units"], "kl_units_90": s["kl_units_90"], "kl_nats": s["kl_nats"],
            "recon_mse": vae.recon_error(dec, terms["mean"], x, 1000) / (hi - lo) ** 2,
            "log_p": log_p.mean().item() + vae.density_shift(pixel_range)}


LABELS = {"q1": "Q1 (Eq. 5, [\u22121, 1])", "true_elbo": "true ELBO", "unit_range": "pixels in [0, 1]",
          "q3": "Q3 (SparseAdam)", "q3_row_adam": "Q3 (Adam per row)"}


def train_variants(configs: dict[str, q1_vae.Config], ctx: Context) -> dict[str, tuple]:
    """The VAE of each variant: name -> (encoder, generator, pixel range)."""
    models = {}
    for name, variant in configs.items():
        ctx.progress.note(f"training the variant {name!r}")
        x_tr = to_float(ctx.data.train.x, *variant.pixel_range).to(ctx.device)
        x_va = to_float(ctx.data.val.x, *variant.pixel_range).to(ctx.device)
        fit = vae.fit(variant, ctx, x_tr, {"val": x_va}, {})
        models[name] = (fit.encoder.eval(), fit.decoder.eval(), variant.pixel_range)
    return models


def rerun_q3(ctx: Context, q1: dict, z: torch.Tensor) -> q3_latent_opt.LatentFit:
    """Q3 as before but with an exact per-row Adam for the q vectors."""
    ctx.progress.note("training Q3 again with Adam per row (RowAdam)")
    cfg = q3_latent_opt.SMOKE if ctx.smoke else q3_latent_opt.Config()
    cfg = dataclasses.replace(cfg, latent_optimizer="row_adam", snapshot_epochs=(cfg.epochs,))
    return q3_latent_opt.fit_latents(cfg, ctx, q1, to_float(ctx.data.train.x, *q1["arch"]["pixel_range"]).to(ctx.device), z)


def run(cfg: Config, ctx: Context) -> Result:
    sup, q1, q2, q3 = (ctx.require(name) for name in REQUIRES)
    classifier = build_cnn(**sup["arch"]).to(ctx.device)
    classifier.load_state_dict(sup["model"])
    classifier.eval()
    pick = torch.Generator().manual_seed(ctx.seed + cfg.stream)
    x01 = to_float(ctx.data.val.x[pick_per_digit(ctx.data.val.y, cfg.loglik_per_digit, pick).flatten()], 0.0, 1.0)
    z = torch.randn(cfg.prior_samples, q1["arch"]["latent_dim"], generator=pick).to(ctx.device)
    z[:len(q2["z"])] = q2["z"].to(ctx.device)  # the first ten are Q2's, so the grid matches Q2's figure
    configs = variants(dataclasses.replace(q1_vae.SMOKE if ctx.smoke else q1_vae.Config(), epochs=cfg.epochs))
    models = {"q1": (*vae.restore(q1, ctx.device), tuple(q1["arch"]["pixel_range"])), **train_variants(configs, ctx)}
    exact = rerun_q3(ctx, q1, z[:len(q2["z"])])
    generators = {**{name: (dec, rng) for name, (_, dec, rng) in models.items()},
                  "q3": (vae.restore_decoder(q3["arch"], q3["decoder"], ctx.device), tuple(q3["arch"]["pixel_range"])),
                  "q3_row_adam": (exact.decoder.eval(), tuple(q1["arch"]["pixel_range"]))}
    noise = torch.Generator().manual_seed(ctx.seed + cfg.stream + 1)
    judged, rows = {}, []
    for name, (dec, (lo, hi)) in generators.items():
        with torch.no_grad():
            images01 = ((dec(z) - lo) / (hi - lo)).clamp(0, 1)  # (S, 1, 28, 28)
        rows.append(images01[:len(q2["z"]), 0].cpu().numpy())
        judged[name] = classify(classifier, images01, cfg.confident)
        if name in models:
            judged[name].update(assess(models[name][0], dec, (lo, hi), x01.to(ctx.device), cfg, ctx.seed + 1, noise))
    betas = {name: vae.effective_kl_weight(v.sigma_p, v.latent_dim, v.kl_weight) for name, v in configs.items()}
    metrics = {"models": judged, "labels": {name: LABELS[name] for name in generators}, "betas": betas,
               "kl_weights": {name: v.kl_weight for name, v in configs.items()},
               "q3_row_adam": {"recon_error": exact.recon_error[-1], "neg_elbo": exact.history["neg_elbo"][-1],
                               "kl_nats": exact.history["kl_nats"][-1], "moved_rms": exact.moved_rms},
               "unit_sigma": UNIT_SIGMA, "images": len(x01), "samples": cfg.samples,
               "prior_samples": cfg.prior_samples, "confident": cfg.confident}
    grid = DigitGrid(np.stack(rows), tuple(LABELS[name] for name in generators), tuple(f"z{i + 1}" for i in range(len(q2["z"]))))
    return Result(metrics, {"samples": grid})
