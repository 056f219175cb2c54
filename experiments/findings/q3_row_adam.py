# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""Q3 beside the headline: the q vectors moved by an exact per-row Adam (``q3_latent_opt.RowAdam``).

Question: does the answer to Q3 depend on how the brief's "Adam, learning rate 1e-2" is applied to
the q table? RowAdam moves only the rows of the images in the batch and runs Adam on each row over
its own updates (one per epoch), so each q vector takes steps of about the learning rate: what the
brief's "10x learning rate, as each vector appears once per epoch" describes.

Method: ``q3_latent_opt`` with every setting of the headline but the latent optimizer.

Rerun: ``python reproduce.py --only q3x_rowadam``
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from experiments.brief import q3_latent_opt as q3
from experiments.lib.contract import Context, Result

SECTION = "q3x_rowadam"
TITLE = "Q3 with Adam per row for the q vectors"
REQUIRES: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config(q3.Config):
    latent_optimizer: str = "row_adam"  # RowAdam (Adam per row, over its own updates); all else as the headline


SMOKE = dataclasses.replace(q3.SMOKE, latent_optimizer="row_adam")

HEADLINE = ("final_neg_elbo", "training -ELBO, last epoch (nats)")
TOLERANCES = {"recon_error": (1e-6, 0.01), "latent_stats.kl_to_prior": (1e-3, 25.0)}


def run(cfg: Config, ctx: Context) -> Result:
    fit, metrics, figures = q3.study(cfg, ctx)
    return Result(metrics, figures, q3.artifacts(fit, cfg))
