"""Companion, Stanford STATS305C assignment 6, Problem 2: a neural-network classifier fitted by maximum likelihood.

Questions: (2a) show that the negative log-likelihood of y | x ~ Bern(sigmoid(NN(x))), divided by N,
is the mean of l(y, NN(x)) = -y log s(NN(x)) - (1 - y) log(1 - s(NN(x))); (2b) the network
2 -> 3 -> 5 -> 1 with ReLU (h1 = ReLU(W1 x + b1), h2 = ReLU(W2 h1 + b2), z = w3^T h2 + b3) and its
untrained predictions; (2c) full-batch gradient descent (SGD, step 1, no momentum) for 1000
iterations on the course's 500 points (positives uniform in radius on [0, 2.5], negatives on [3.5, 5],
angle uniform), the loss curve and the trained predictions.

Method: the course's data, network and optimizer; the loss is -log Bernoulli(y; sigmoid(z))
(``prob.bernoulli_log_prob``, the l above; torch calls it BCEWithLogitsLoss), averaged over the 500
points. Besides the figures: training accuracy, and accuracy on a fresh draw of 500 points from the
same distribution; the network is retrained from ``restarts`` initialisations to say how often this
small network (3 ReLU units in its first layer) separates the classes.

Rerun: ``python reproduce.py --only stan_nn``
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from experiments.lib.contract import Context, Result
from experiments.lib.plotting import new_figure
from experiments.lib.prob import bernoulli_log_prob

SECTION = "stan_nn"
TITLE = "Stanford STATS305C, Problem 2: a neural-network classifier by maximum likelihood"
REQUIRES: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    points: int = 500  # data points, half of each label (the course: 500)
    radius: float = 5.0  # outer radius (the course: 5); positives within 0.5 radius, negatives from 0.7 radius
    hidden: tuple[int, int] = (3, 5)  # units of the two hidden layers (the course: 3 and 5)
    lr: float = 1.0  # full-batch gradient descent step (the course: 1, no momentum)
    iters: int = 1000  # iterations (the course: 1000)
    restarts: int = 10  # initialisations trained in all (the first one is drawn)
    separated: float = 0.95  # a run "separates the classes" when its held-out accuracy exceeds this
    stream: int = 50  # generators seeded with seed + stream + k


SMOKE = Config(iters=50, restarts=2)

HEADLINE = ("test_accuracy", "held-out accuracy")
TOLERANCES = {"test_accuracy": (1e-6, 0.05), "train_accuracy": (1e-6, 0.05)}


def make_dataset(cfg: Config, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The course's two rings: points (N, 2) and labels (N,), the negatives (0) first."""
    def annulus(inner: float, outer: float, n: int) -> torch.Tensor:
        r = inner + (outer - inner) * torch.rand(n, generator=generator)
        angle = 2 * math.pi * torch.rand(n, generator=generator)
        return torch.stack([r * torch.cos(angle), r * torch.sin(angle)], 1)
    half = cfg.points // 2
    positives = annulus(0.0, 0.5 * cfg.radius, half)
    negatives = annulus(0.7 * cfg.radius, cfg.radius, half)
    return torch.cat([negatives, positives]), torch.cat([torch.zeros(half), torch.ones(half)])


class SimpleNet(nn.Module):
    """z = w3^T ReLU(W2 ReLU(W1 x + b1) + b2) + b3: x (N, 2) -> logits (N,)."""

    def __init__(self, hidden: tuple[int, int]):
        super().__init__()
        self.fc1, self.fc2, self.fcout = nn.Linear(2, hidden[0]), nn.Linear(hidden[0], hidden[1]), nn.Linear(hidden[1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fcout(torch.relu(self.fc2(torch.relu(self.fc1(x))))).squeeze(1)


def nll(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """L(theta) = (1/N) sum_n l(y_n, z_n), l(y, z) = -log Bern(y; sigmoid(z)) (Problem 2a)."""
    return -bernoulli_log_prob(y.unsqueeze(1), logits.unsqueeze(1)).mean()


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return ((net(x) > 0).float() == y).float().mean().item()


def train(cfg: Config, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """Full-batch gradient descent on L(theta); the loss before each step."""
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=0.0)
    losses = []
    for _ in range(cfg.iters):
        opt.zero_grad()
        loss = nll(net(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def predictions(ax, net: nn.Module, x: torch.Tensor, y: torch.Tensor, title: str) -> None:
    """P(y = 1 | x) over [-6, 6]^2 with the points (red: 1, blue: 0), as the course draws it."""
    g = torch.linspace(-6, 6, 200)
    pts = torch.cartesian_prod(g, g)  # (z1 major)
    with torch.no_grad():
        p = torch.sigmoid(net(pts)).reshape(200, 200).T.numpy()  # rows: x2
    mesh = ax.pcolormesh(g.numpy(), g.numpy(), p, cmap="YlGn", vmin=0, vmax=1, rasterized=True)
    for label, colour in ((1, "red"), (0, "blue")):
        ax.scatter(x[y == label, 0].numpy(), x[y == label, 1].numpy(), s=1.5, color=colour, linewidths=0)
    ax.set_title(title, fontsize=7)
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    return mesh


def run(cfg: Config, ctx: Context) -> Result:
    gen = torch.Generator().manual_seed(ctx.seed + cfg.stream)
    x, y = make_dataset(cfg, gen)
    x_new, y_new = make_dataset(cfg, gen)  # a fresh draw from the same distribution
    runs = []
    for k in range(cfg.restarts):
        torch.manual_seed(ctx.seed + cfg.stream + 1 + k)
        net = SimpleNet(cfg.hidden)
        if k == 0:
            fig, (before, after, curve) = new_figure(3, 6.8, 2.2)
            predictions(before, net, x, y, "untrained network")
            start_loss = nll(net(x), y).item()
        losses = train(cfg, net, x, y)
        with torch.no_grad():
            final = nll(net(x), y).item()
        runs.append({"final_loss": final, "train_accuracy": accuracy(net, x, y), "test_accuracy": accuracy(net, x_new, y_new),
                     # first-layer units that output 0 on every training point ("dead": no gradient reaches them)
                     "dead_units": int((torch.relu(net.fc1(x)).amax(0) == 0).sum())})
        if k == 0:
            mesh = predictions(after, net, x, y, f"after {cfg.iters} steps")
            fig.colorbar(mesh, ax=after, fraction=0.046)
            curve.plot(np.arange(cfg.iters), losses, linewidth=0.8)
            curve.set_xlabel("gradient descent iteration")
            curve.set_ylabel("objective value")
            curve.grid(alpha=0.3, linewidth=0.5)
    before.set_ylabel("$x_2$")
    first = runs[0]
    metrics = {"start_loss": start_loss, **{k: first[k] for k in ("final_loss", "train_accuracy", "test_accuracy", "dead_units")},
               "restarts": runs, "separated": sum(r["test_accuracy"] > cfg.separated for r in runs),
               "parameters": sum(p.numel() for p in net.parameters())}
    return Result(metrics, {"fit": fig})
