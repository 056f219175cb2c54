"""Companion, Stanford STATS305C assignment 6, Problem 1: gradient descent on a quadratic f(x) = x^T diag(a) x.

Questions: (1a) gradient descent with a = (0.2, 0.2), step 0.8, 50 iterations from x0 = (10, 10): the
loss curve and the trajectory over the contours; (1b) the same with a = (0.05, 1.2): why the iterates
oscillate about x_2 = 0, and one change (the objective kept) that removes it; (1c) a in R^10 with
a_i = 10^(-2 + 4(i-1)/9), x0 = (10, ..., 10), 1000 iterations: an optimizer and settings that reach
a loss below 0.01.

Method: the course's loop (zero the gradient, f(x), backward, one optimizer step; losses[k] = f(x_k)),
torch.optim on an nn.Parameter in float64. The exact answer for gradient descent: grad f = 2 a * x,
so each coordinate is multiplied by c_i = 1 - 2 alpha a_i per step, x_k = c^k x0, and
f(x_k) = sum_i a_i c_i^(2k) x0_i^2; every run of plain gradient descent is checked against it. In 1c
the best final loss plain gradient descent can reach at any step is found from that formula over a
fine grid of steps (it diverges past alpha = 1 / max a); momentum uses Polyak's tuned heavy-ball
constants for curvatures 2 a_min .. 2 a_max; Adam and Adagrad at a few steps.

Rerun: ``python reproduce.py --only stan_gd``
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from experiments.lib.contract import Context, Result
from experiments.lib.plotting import LINES, new_figure

SECTION = "stan_gd"
TITLE = "Stanford STATS305C, Problem 1: gradient descent on a quadratic"
REQUIRES: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    start: float = 10.0  # every coordinate of x0 (the course: 10)
    a_well: tuple[float, ...] = (0.2, 0.2)  # 1a's curvatures (the course: (0.2, 0.2))
    a_ill: tuple[float, ...] = (0.05, 1.2)  # 1b's curvatures (the course: (0.05, 1.2))
    lr: float = 0.8  # 1a and 1b's step (the course: 0.8)
    iters: int = 50  # 1a and 1b's iterations (the course: 50)
    fix_lr: float = 0.4  # 1b's remedy: a step below 1 / (2 max a) = 0.417, so that no factor 1 - 2 lr a_i is negative
    dim: int = 10  # 1c's dimension (the course: 10)
    high_iters: int = 1000  # 1c's iterations (the course: 1000)
    target: float = 0.01  # 1c's target final loss (the course: 0.01)
    adam_lrs: tuple[float, ...] = (0.01, 0.1, 1.0)  # Adam's steps tried in 1c (the course's sample answer: 0.1)
    adagrad_lrs: tuple[float, ...] = (1.0, 5.0)  # Adagrad's steps tried in 1c
    gd_grid: int = 2000  # steps alpha in (0, 1 / max a) searched for plain gradient descent's best final loss


SMOKE = Config(high_iters=100, gd_grid=50)

HEADLINE = ("high.best_final_loss", "1c: lowest final loss (target 0.01)")
TOLERANCES = {"high.best_final_loss": (1e-9, 1e-3)}


def f(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """The objective x^T diag(a) x = sum_i a_i x_i^2 over the last dimension."""
    return (a * x ** 2).sum(-1)


def run_optimization(x0: torch.Tensor, a: torch.Tensor, make_optimizer, iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The course's loop: iterates x_0..x_iters (iters + 1, D) and losses f(x_0)..f(x_{iters-1}) (iters,)."""
    x = nn.Parameter(x0.clone())
    opt = make_optimizer([x])
    xs, losses = [x.detach().clone()], []
    for _ in range(iters):
        opt.zero_grad()
        loss = f(x, a)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        xs.append(x.detach().clone())
    return torch.stack(xs), torch.tensor(losses, dtype=x0.dtype)


def gd_losses(x0: torch.Tensor, a: torch.Tensor, lr: float, iters: int) -> torch.Tensor:
    """Gradient descent's exact losses f(x_k) = sum_i a_i (1 - 2 lr a_i)^(2k) x0_i^2, k = 0..iters-1."""
    k = torch.arange(iters, dtype=x0.dtype).unsqueeze(1)  # (iters, 1)
    return (a * (1 - 2 * lr * a) ** (2 * k) * x0 ** 2).sum(-1)


def gd(lr: float):
    return lambda params: torch.optim.SGD(params, lr=lr)


def sign_changes(v: torch.Tensor) -> int:
    """How often consecutive values change sign (an oscillation about 0)."""
    return int((v[1:] * v[:-1] < 0).sum())


def gd_case(a: torch.Tensor, x0: torch.Tensor, lr: float, iters: int) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """Plain gradient descent: its numbers, checked against the exact losses; the iterates and losses."""
    xs, losses = run_optimization(x0, a, gd(lr), iters)
    exact = gd_losses(x0, a, lr, iters)
    return ({"lr": lr, "factors": (1 - 2 * lr * a).tolist(), "final_loss": losses[-1].item(), "last_x": xs[-1].tolist(),
             "max_rel_error_vs_exact": ((losses - exact).abs() / exact).max().item(),
             "sign_changes": [sign_changes(xs[:, i]) for i in range(len(a))]}, xs, losses)


def trajectory(ax, xs: torch.Tensor, label: str, style: str) -> None:
    """The iterates (iters + 1, 2) joined in order, over contours drawn by ``contours``."""
    ax.plot(xs[:, 0].numpy(), xs[:, 1].numpy(), style, marker="*", markersize=3, linewidth=0.7, label=label)


def contours(ax, a: torch.Tensor, width: float) -> None:
    """20 contours of f over [-width, width]^2."""
    g = np.linspace(-width, width, 200)
    x1, x2 = np.meshgrid(g, g)
    ax.contour(x1, x2, a[0].item() * x1 ** 2 + a[1].item() * x2 ** 2, 20, linewidths=0.4, cmap="Greys")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_aspect("equal")


def run(cfg: Config, ctx: Context) -> Result:
    dt = torch.float64
    x0 = torch.full((2,), cfg.start, dtype=dt)
    a_well, a_ill = torch.tensor(cfg.a_well, dtype=dt), torch.tensor(cfg.a_ill, dtype=dt)
    well, xs_w, loss_w = gd_case(a_well, x0, cfg.lr, cfg.iters)
    ill, xs_i, loss_i = gd_case(a_ill, x0, cfg.lr, cfg.iters)
    fixed, xs_f, loss_f = gd_case(a_ill, x0, cfg.fix_lr, cfg.iters)

    fig, (lc, tw, ti) = new_figure(3, 6.8, 2.3)
    for i, (name, loss) in enumerate((("1a", loss_w), ("1b", loss_i), (f"1b, step {cfg.fix_lr:g}", loss_f))):
        lc.semilogy(np.arange(cfg.iters), loss.numpy(), LINES[i], label=name)
    lc.set_xlabel("gradient descent iteration")
    lc.set_ylabel("objective value")
    lc.legend(frameon=False)
    lc.grid(alpha=0.3, linewidth=0.5)
    width = 1.2 * cfg.start
    contours(tw, a_well, width)
    trajectory(tw, xs_w, "1a", "C0-")
    tw.set_title(f"1a: a = {tuple(cfg.a_well)}", fontsize=7)
    contours(ti, a_ill, width)
    trajectory(ti, xs_i, f"step {cfg.lr:g}", "C1-")
    trajectory(ti, xs_f, f"step {cfg.fix_lr:g}", "C2--")
    ti.set_title(f"1b: a = {tuple(cfg.a_ill)}", fontsize=7)
    ti.legend(frameon=False, fontsize=6)

    # ---- 1c
    a = torch.tensor([10 ** (-2 + 4 * i / (cfg.dim - 1)) for i in range(cfg.dim)], dtype=dt)
    x0c = torch.full((cfg.dim,), cfg.start, dtype=dt)
    # plain gradient descent at every step on a grid up to divergence (|1 - 2 lr a_max| < 1 iff lr < 1 / a_max)
    lrs = torch.linspace(0, 1 / a.max().item(), cfg.gd_grid + 1, dtype=dt)[1:-1]
    finals = torch.stack([gd_losses(x0c, a, lr.item(), cfg.high_iters + 1)[-1] for lr in lrs])
    best_lr = lrs[finals.argmin()].item()
    # Polyak's heavy ball for Hessian eigenvalues in [mu, L] = [2 a_min, 2 a_max]
    mu, L = 2 * a.min().item(), 2 * a.max().item()
    hb_lr, hb_momentum = 4 / (math.sqrt(L) + math.sqrt(mu)) ** 2, ((math.sqrt(L) - math.sqrt(mu)) / (math.sqrt(L) + math.sqrt(mu))) ** 2
    candidates = {f"gradient descent, step {best_lr:.4g} (its best)": gd(best_lr),
                  f"heavy ball, step {hb_lr:.5g}, momentum {hb_momentum:.6f}":
                      lambda p: torch.optim.SGD(p, lr=hb_lr, momentum=hb_momentum),
                  **{f"Adam, step {lr:g}": (lambda p, lr=lr: torch.optim.Adam(p, lr=lr)) for lr in cfg.adam_lrs},
                  **{f"Adagrad, step {lr:g}": (lambda p, lr=lr: torch.optim.Adagrad(p, lr=lr)) for lr in cfg.adagrad_lrs}}
    runs, curves = [], {}
    for name, make in candidates.items():
        xs, losses = run_optimization(x0c, a, make, cfg.high_iters)
        final = f(xs[-1], a).item()  # the loss after the last step
        runs.append({"optimizer": name, "final_loss": final, "meets_target": final < cfg.target})
        curves[name] = losses
    gd_run = runs[0]
    gd_exact = gd_losses(x0c, a, best_lr, cfg.high_iters + 1)[-1].item()
    fig_c, (ax,) = new_figure(1, 4.6, 2.4)
    for i, (name, loss) in enumerate(curves.items()):
        ax.semilogy(np.arange(cfg.high_iters), loss.clamp(min=1e-30).numpy(), LINES[i % 4], color=f"C{i}", label=name, linewidth=0.8)
    ax.axhline(cfg.target, color="0.3", linewidth=0.5)
    ax.set_xlabel("optimization iteration")
    ax.set_ylabel("objective value")
    ax.legend(frameon=False, fontsize=5.5, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.grid(alpha=0.3, linewidth=0.5)
    metrics = {
        "well": well, "ill": ill, "ill_fixed": fixed,
        # iterations x_1 takes to shrink tenfold at 1b's fixed step (|1 - 2 lr a_1|^k = 0.1)
        "ill_fixed_tenfold_iters": math.log(0.1) / math.log(abs(1 - 2 * cfg.fix_lr * cfg.a_ill[0])),
        "high": {"a_min": a.min().item(), "a_max": a.max().item(), "condition": (a.max() / a.min()).item(),
                 "gd_best_lr": best_lr, "gd_best_final_exact": finals.min().item(),
                 "gd_simulated_vs_exact": abs(gd_run["final_loss"] - gd_exact) / gd_exact,
                 "heavy_ball_rate": math.sqrt(hb_momentum),
                 "runs": runs, "best_final_loss": min(r["final_loss"] for r in runs),
                 "best": min(runs, key=lambda r: r["final_loss"])["optimizer"]},
    }
    return Result(metrics, {"ab": fig, "high": fig_c})
