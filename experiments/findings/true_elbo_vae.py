# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""Additional findings, model 1: the VAE of Q1 trained on the true ELBO instead of the brief's Eq. 5.

Question: the brief's aggregation weights the KL by beta = 12.25 relative to the true ELBO (see
``vae.py``); what does the model of the true ELBO (beta = 1) look like? ``extra`` compares it.

Method: Q1's configuration with the KL weight 1 / 12.25 in the brief's units, trained for 30 epochs.

Rerun: ``python reproduce.py --only extra_beta``
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from experiments.brief import q1_vae
from experiments.lib import vae
from experiments.lib.contract import Context, Result

SECTION = "extra_beta"
TITLE = "Findings: the VAE of the true ELBO"
REQUIRES: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    beta: float = 1.0  # KL weight relative to the true ELBO (the brief's Eq. 5 has 12.25)
    model: q1_vae.Config = q1_vae.Config()  # everything else as in Q1


SMOKE = Config(model=q1_vae.SMOKE)

HEADLINE = ("final_loss", "running training loss, last epoch")
TOLERANCES: dict = {}


def variant(cfg: Config) -> q1_vae.Config:
    """Q1's configuration with the KL weight that makes the effective weight ``cfg.beta``; no snapshots."""
    base = cfg.model
    return dataclasses.replace(base, kl_weight=cfg.beta / vae.effective_kl_weight(base.sigma_p, base.latent_dim),
                               snapshot_epochs=())


def run(cfg: Config, ctx: Context) -> Result:
    model, epoch_s = vae.fit_alone(variant(cfg), ctx)
    return Result({"kl_weight": model["loss"]["kl_weight"], "final_loss": model["train_loss_running"][-1], "beta": cfg.beta,
                   "train_loss_running": model["train_loss_running"], "timing": {"epoch_s": epoch_s}},
                  {}, model)
