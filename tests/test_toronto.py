"""The Toronto sections' helpers (posterior windows, modes, lattice bounds), against exact answers."""
from __future__ import annotations

import math

import torch

from experiments.courses.toronto import posterior as tor_posterior
from experiments.courses.toronto import vae as tor_vae
from experiments.lib.prob import diag_gaussian_log_prob


def grid_density(n: int, centres: list[tuple[float, float]]) -> tuple[torch.Tensor, torch.Tensor]:
    """A mixture of equal narrow Gaussians (sd 0.2) at ``centres`` on [-4, 4]^2: the grid (n^2, 2) and log density."""
    axis = torch.linspace(-4, 4, n)
    points = torch.cartesian_prod(axis, axis)
    logvar = torch.full((2,), 2 * math.log(0.2))
    parts = torch.stack([diag_gaussian_log_prob(points, torch.tensor(c), logvar) for c in centres])
    return points, parts.logsumexp(0) - math.log(len(centres))


def test_modes_counts_the_components_of_a_mixture():
    """Two separated bumps give 2 modes, one gives 1."""
    points, two = grid_density(81, [(0.0, -2.0), (0.0, 2.0)])
    _, one = grid_density(81, [(1.0, 1.0)])
    assert tor_posterior.modes(two, 81, 0.01) == 2 and tor_posterior.modes(one, 81, 0.01) == 1


def test_support_box_holds_both_modes():
    """The box of the region above 1e-4 of the peak reaches past both bumps' centres by their width."""
    points, log_p = grid_density(81, [(0.0, -2.0), (0.0, 2.0)])
    (low, high) = tor_posterior.support_box(points, log_p, 1e-4, 0.1)
    assert low[1] < -2.6 and high[1] > 2.6 and low[0] < -0.6 and high[0] > 0.6 and high[1] < 4


def test_window_spans_the_boxes_with_its_own_spacing_per_axis():
    """The window covers the union of the boxes plus a tenth each way; cell area = product of the two spacings."""
    boxes = [torch.tensor([[0.0, -1.0], [1.0, 1.0]]), torch.tensor([[0.5, 0.0], [2.0, 3.0]])]
    points, cell = tor_posterior.window(boxes, 11)
    assert torch.allclose(points.min(0).values, torch.tensor([-0.2, -1.4])) and torch.allclose(points.max(0).values, torch.tensor([2.2, 3.4]))
    assert math.isclose(cell, (2.4 / 10) * (4.8 / 10), rel_tol=1e-5)


def test_lattice_bounds_are_the_scatter_quantiles():
    """The lattice's bounds are the q and 1 - q quantiles of each coordinate, and the share inside is counted per digit."""
    codes = torch.stack([torch.arange(1000.0), -torch.arange(1000.0)], 1)
    labels = torch.arange(1000) % 10
    b = tor_vae.lattice_bounds(tor_vae.Config(lattice_quantile=0.1), codes, labels)
    assert [round(v, 3) for v in b["low"]] == [99.9, -899.1] and [round(v, 3) for v in b["high"]] == [899.1, -99.9]
    assert math.isclose(b["inside"], 0.8, abs_tol=0.002) and len(b["inside_per_digit"]) == 10



class GaussianPosterior:
    """A stand-in for the VAE whose joint in z is log N(z; mean, diag var): its posterior is that Gaussian, exactly."""

    def __init__(self, mean: torch.Tensor, var: torch.Tensor):
        self.mean, self.logvar = mean, var.log()

    def log_joint(self, x: torch.Tensor, pixels: slice = slice(None)):
        return lambda z: diag_gaussian_log_prob(z, self.mean, self.logvar)


def test_svi_finds_the_kl_optimal_gaussian_of_each_family():
    """Posterior N(m, diag(0.25, 4)): SVI's per-axis fit recovers it; the isotropic fit has mean m and the KL(q || p)
    optimum sigma^2 = d / tr(S^-1) = 2 / 4.25 (means within a tenth of each axis's SD, variances 10%, after 3,000 steps)."""
    from experiments.lib import latent2d
    truth = GaussianPosterior(torch.tensor([1.0, -2.0]), torch.tensor([0.25, 4.0]))
    x, start = torch.zeros(1, 784), torch.zeros(1, 2)
    fits = {iso: latent2d.svi(truth, x, start, start, 3000, 0.02, 32, torch.Generator().manual_seed(0), isotropic=iso)
            for iso in (False, True)}
    near = lambda mean: bool(((mean[0] - truth.mean).abs() <= 0.1 * (0.5 * truth.logvar).exp()).all())  # noqa: E731
    mean, logvar = fits[False]
    assert near(mean) and torch.allclose(logvar[0].exp(), truth.logvar.exp(), rtol=0.1)
    mean, logvar = fits[True]
    assert near(mean) and logvar[0, 0] == logvar[0, 1]
    assert math.isclose(logvar[0, 0].exp().item(), 2 / 4.25, rel_tol=0.1)
