# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""Additional findings, model 2: the VAE of Q1 with pixels scaled to [0, 1] instead of [-1, 1].

Question: under the brief's loss, how much does the pixel scale change posterior collapse? Pixels in
[0, 1] quarter the squared error against the KL term. ``extra`` compares it.

Method: Q1's configuration with pixels in [0, 1] (a sigmoid output), trained for 30 epochs.

Rerun: ``python reproduce.py --only extra_range``
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from experiments.brief import q1_vae
from experiments.lib import vae
from experiments.lib.contract import Context, Result

SECTION = "extra_range"
TITLE = "Findings: the VAE on pixels in [0, 1]"
REQUIRES: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    pixel_range: tuple[float, float] = (0.0, 1.0)  # pixels are scaled linearly to this range (Q1: [-1, 1])
    model: q1_vae.Config = q1_vae.Config()  # everything else as in Q1


SMOKE = Config(model=q1_vae.SMOKE)

HEADLINE = ("final_loss", "running training loss, last epoch")
TOLERANCES: dict = {}


def run(cfg: Config, ctx: Context) -> Result:
    base = cfg.model
    model, epoch_s = vae.fit_alone(dataclasses.replace(base, pixel_range=cfg.pixel_range, snapshot_epochs=()), ctx)
    return Result({"kl_weight": model["loss"]["kl_weight"], "final_loss": model["train_loss_running"][-1], "train_loss_running": model["train_loss_running"],
                   "timing": {"epoch_s": epoch_s}}, {}, model)
