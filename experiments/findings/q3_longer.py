# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""Q3 beside the headline: has latent optimization converged after the brief's 30 epochs?

Question: Q3's training -ELBO is still falling at epoch 30; where does it go with a longer budget?

Method: the headline run of ``q3_latent_opt`` (dense Adam, the brief's learning rates) continued
exactly from its final state (weights, q vectors, Adam moments, shuffling and noise streams) up to
``Config.epochs``, evaluated as before after every epoch. Its budget: ``epochs - 30`` more epochs, about
as long as the headline run itself.

Rerun: ``python reproduce.py --only q3x_long`` (needs Q3; it runs first when stale)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from experiments.brief import q3_latent_opt as q3
from experiments.lib.contract import Context, Result

SECTION = "q3x_long"
TITLE = "Q3 trained for longer"
REQUIRES = ("q3",)


@dataclass(frozen=True)
class Config:
    epochs: int = 60  # total epochs, the headline's 30 included
    snapshot_epochs: tuple[int, ...] = (40, 50, 60)  # epochs whose reconstructions and samples are kept


SMOKE = Config(epochs=4, snapshot_epochs=(3, 4))

HEADLINE = ("final_neg_elbo", "training -ELBO, last epoch (nats)")
TOLERANCES = {"recon_error": (1e-6, 0.01), "latent_stats.kl_to_prior": (1e-3, 25.0)}


def run(cfg: Config, ctx: Context) -> Result:
    headline = ctx.require("q3")
    base = q3.SMOKE if ctx.smoke else q3.Config()  # the headline's settings; its key counts through REQUIRES
    longer = dataclasses.replace(base, epochs=cfg.epochs, snapshot_epochs=cfg.snapshot_epochs)
    fit, metrics, figures = q3.study(longer, ctx, resume=headline["resume"])
    # every epoch from the first: the headline's, then this continuation's
    history = {k: headline["history"][k] + v for k, v in fit.history.items()}
    metrics = {**metrics, **history, "first_epoch": headline["resume"]["epoch"] + 1,
               "neg_elbo_drop": q3.recent_drop(history["neg_elbo"])}
    del metrics["latent_stats_init"]  # the q vectors of this run were not initialised here
    return Result(metrics, figures, {**q3.artifacts(fit, longer), "history": history})
