# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""``--spread --jitter N``: a rerun at the same seed whose rounding differs, as on another machine.

Another CPU, thread count or library build draws the same random numbers from the same seed but
rounds some operations differently; training amplifies such last-bit differences the way it
amplifies any small change. Perturbation k (1, 2, ...) imitates that: before the first step of
every optimizer, each parameter moves by one unit in the last place (``nextafter``), up or down at
random from a generator seeded with k alone, so the run's own draws are untouched. The spread of a
number over the unperturbed run and N perturbed ones is its spread across machines at one seed; a
new seed also redraws data, initialisation and noise, and so spreads many numbers far wider.
"""
from __future__ import annotations

import math
import weakref

import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook
from torch.utils.hooks import RemovableHandle


def perturb(params, generator: torch.Generator) -> None:
    """Move every parameter by one unit in the last place, each element up or down with probability 1/2."""
    with torch.no_grad():
        for p in params:
            up = torch.rand(p.shape, generator=generator) < 0.5  # drawn on the CPU: the same on any device
            toward = torch.where(up, math.inf, -math.inf).to(device=p.device, dtype=p.dtype)
            p.copy_(torch.nextafter(p, toward))


def install(k: int) -> RemovableHandle | None:
    """Perturbation ``k`` for every optimizer stepped from now until the handle is removed; None for k = 0 (none)."""
    if k == 0:
        return None
    generator, done = torch.Generator().manual_seed(k), weakref.WeakSet()

    def first_step(optimizer, args, kwargs):
        if optimizer not in done:
            done.add(optimizer)
            perturb([p for group in optimizer.param_groups for p in group["params"]], generator)

    return register_optimizer_step_pre_hook(first_step)
