# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""Shared plotting: one style for every figure (the report's serif family), and curve panels."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

# Font sizes are in points at print size when a figure is drawn at the width it takes on the page
# (A4 text width: TEXT_WIDTH_IN); every label is at least 7 pt there.
TEXT_WIDTH_IN = 180 / 25.4
STYLE = {
    "font.family": "DejaVu Serif",
    "mathtext.fontset": "dejavuserif",
    "font.size": 7.8,
    "axes.titlesize": 7.8,
    "axes.labelsize": 7.5,
    "legend.fontsize": 7.0,
    "xtick.labelsize": 7.2,
    "ytick.labelsize": 7.2,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.2,
    "lines.markersize": 2.5,
    "svg.fonttype": "path",
    "svg.hashsalt": "vi-mnist",
    "axes.unicode_minus": True,
}
# Applied once for the whole process (figures are made only by the experiment modules), so every
# text element, including those added after a plot is drawn, uses the report's font.
plt.rcParams.update(STYLE)
MARKERS = ("o", "s", "^", "D")  # distinct shapes, so curves that coincide stay visible
LINES = ("-", "--", ":", "-.")


def new_figure(ncols: int = 1, width_in: float = 3.2, height_in: float = 2.0):
    """A figure with ``ncols`` side-by-side axes in the report's style."""
    fig, axes = plt.subplots(1, ncols, figsize=(width_in, height_in), layout="constrained", squeeze=False)
    return fig, list(axes[0])


def plot_curves(ax, series: dict[str, list[float]], ylabel: str) -> None:
    """One line per named series against epochs 1..n; a legend when there are several."""
    for i, (label, values) in enumerate(series.items()):
        ax.plot(np.arange(1, len(values) + 1), values, marker=MARKERS[i % 4], linestyle=LINES[i % 4], label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, linewidth=0.5)
    if len(series) > 1:
        ax.legend(frameon=False)


def to_unit_range(x: torch.Tensor, low: float, high: float) -> np.ndarray:
    """Images in [low, high] (any leading shape, last two 28x28) -> numpy floats in [0, 1] for DigitGrid."""
    return ((x.detach().float().cpu() - low) / (high - low)).clamp(0.0, 1.0).numpy()
