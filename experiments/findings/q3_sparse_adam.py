# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""Q3 beside the headline: the q vectors moved by ``torch.optim.SparseAdam`` instead of dense Adam.

Question: does the answer to Q3 depend on how the brief's "Adam, learning rate 1e-2" is applied to
the q table? SparseAdam moves only the rows of the images in the batch, once per epoch each, but
corrects their bias with the table's global step count, so those steps are several times the
learning rate.

Method: ``q3_latent_opt`` with every setting of the headline but the latent optimizer.

Rerun: ``python reproduce.py --only q3x_sparse``
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from experiments.brief import q3_latent_opt as q3
from experiments.lib.contract import Context, Result

SECTION = "q3x_sparse"
TITLE = "Q3 with SparseAdam for the q vectors"
REQUIRES: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config(q3.Config):
    latent_optimizer: str = "sparse_adam"  # torch.optim.SparseAdam on the q table; all else as the headline


SMOKE = dataclasses.replace(q3.SMOKE, latent_optimizer="sparse_adam")

HEADLINE = ("final_neg_elbo", "training -ELBO, last epoch (nats)")
TOLERANCES = {"recon_error": (1e-6, 0.01), "latent_stats.kl_to_prior": (1e-3, 25.0)}


def run(cfg: Config, ctx: Context) -> Result:
    fit, metrics, figures = q3.study(cfg, ctx)
    return Result(metrics, figures, q3.artifacts(fit, cfg))
