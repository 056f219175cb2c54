# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""What an experiment module receives (``Context``) and returns (``Result``).

The pipeline (``pipeline/``) builds the context, calls ``run(cfg, ctx)``, and writes what comes
back: numbers to ``report/results.json``, figures to ``report/figures/``, artifacts (model
weights) to the checkpoint folder. A module never writes files itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from experiments.lib.data import Splits
from experiments.lib.runtime import Progress


@dataclass(frozen=True)
class DigitGrid:
    """A grid of 28x28 images to be written as a pixel-exact PNG (nearest-neighbour upscaling).

    images: (rows, cols, 28, 28) floats in [0, 1]; labels name the rows and columns.
    """

    images: np.ndarray
    row_labels: tuple[str, ...]
    col_labels: tuple[str, ...] = ()


@dataclass
class Result:
    """What ``run`` returns.

    metrics: JSON-serialisable numbers (floats, ints, strings, lists, nested dicts) for the registry;
             per-epoch series are lists. Every number the report prints must be in here.
    figures: name -> matplotlib ``Figure`` (written as SVG) or ``DigitGrid`` (written as PNG).
    artifacts: name -> torch-serialisable object (state dicts, tensors) that later sections reuse;
               saved as the section's checkpoint, never put in the registry.
    """

    metrics: dict[str, Any]
    figures: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    """Everything a run needs from outside: data, device, seed, progress, and upstream artifacts."""

    data: Splits
    device: torch.device
    seed: int
    progress: Progress
    # require("q1") returns the artifacts dict of section q1, running q1 first when its checkpoint
    # is missing or stale (the pipeline decides and says so).
    require: Callable[[str], dict[str, Any]]
    smoke: bool = False
