"""The log p(x) estimators of Q4 against exact answers: a linear-Gaussian decoder with a 200-dimensional
latent (log p(x) in closed form) and a nonlinear decoder with a 2-dimensional latent (integrated on a grid).

Each estimator's stated error is the standard error over independent repeats (not the delta method)."""
from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal

from experiments.lib import prob

REPEATS = 4


@pytest.fixture(autouse=True)
def one_thread():
    """These problems are tiny: extra threads only add overhead (tens of times on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def g():
    return torch.Generator().manual_seed(0)


def repeated(estimate, repeats: int = REPEATS) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard error over independent repeats of ``estimate()`` -> (B,) log p estimates."""
    runs = torch.stack([estimate() for _ in range(repeats)])  # (R, B)
    return runs.mean(0), runs.std(0) / math.sqrt(repeats)


def reference(x, decode, sigma_p, mean, logvar, g, steps=200):
    """Q4's reference: q* fitted to each posterior from (mean, logvar), then AIS from q* (4 chains)."""
    m, lv, _ = prob.fit_diag_gaussian(x, decode, sigma_p, mean, logvar, 300, 4, 0.05, g)
    return prob.log_mean_exp(prob.ais_log_weights(x, decode, sigma_p, m, lv, steps, 4, 2, 0.2, generator=g)[0])


@pytest.fixture
def linear(g):
    """G(z) = Wz + b with d = 200 latents of which 13 are informed (strong columns of W), D = 60 pixels,
    sigma_p = 0.4; three images drawn from the model; exact log p(x) = log N(x; b, WW^T + sigma_p^2 I); and
    a proposal as mismatched as Q1's encoder (Q4 measures it): in the informed dimensions 7 times the posterior's variance and
    its mean two posterior standard deviations off."""
    d, dim, sigma_p = 200, 60, 0.4
    w = torch.randn(dim, d, generator=g, dtype=torch.float64) * torch.cat([torch.ones(13), torch.full((d - 13,), 0.01)]).double()
    b = torch.randn(dim, generator=g, dtype=torch.float64) * 0.2
    x = (torch.randn(3, d, generator=g, dtype=torch.float64) @ w.T + b
         + sigma_p * torch.randn(3, dim, generator=g, dtype=torch.float64))
    exact = MultivariateNormal(b, w @ w.T + sigma_p ** 2 * torch.eye(dim, dtype=torch.float64)).log_prob(x)
    # posterior N(P^-1 W^T (x - b) / sigma^2, P^-1), P = I + W^T W / sigma^2: its mean and marginal variances
    cov = torch.linalg.inv(torch.eye(d, dtype=torch.float64) + w.T @ w / sigma_p ** 2)
    post_mean, post_var = (x - b) @ w @ cov / sigma_p ** 2, cov.diagonal().expand(3, d)
    informed = torch.arange(d) < 13
    mean = post_mean + 2 * informed * post_var.sqrt()
    logvar = torch.log(post_var * torch.where(informed, 7.0, 1.0))
    return x, (lambda z: z @ w.T + b), sigma_p, mean, logvar, exact


def test_ais_from_a_fitted_proposal_matches_the_linear_gaussian_marginal(linear, g):
    """In 200 latent dimensions, q* + AIS lands within 4 standard errors (over repeats) of the exact log p(x)."""
    x, decode, sigma_p, mean, logvar, exact = linear
    est, se = repeated(lambda: reference(x, decode, sigma_p, mean, logvar, g))
    assert torch.all((est - exact).abs() < 4 * se + 0.05), (est, exact, se)


def test_eq9_with_the_mismatched_proposal_falls_visibly_short(linear, g):
    """Eq. 9 with M = 1000 from the mismatched proposal is more than 2 nats and 3 standard errors below log p(x)."""
    x, decode, sigma_p, mean, logvar, exact = linear
    est, se = repeated(lambda: prob.log_mean_exp(prob.importance_log_weights(x, mean, logvar, decode, sigma_p, 1000, 1000, g)), 16)
    assert torch.all(exact - est > torch.clamp(3 * se, min=2.0)), (est, exact, se)


@pytest.fixture
def two_d(g):
    """G(z) = tanh(Az + c) with a 2-dimensional latent, D = 20 pixels, sigma_p = 0.3; two images drawn from
    the model; log p(x) integrated on a 801 x 801 grid over [-4, 4]^2 (the prior's mass outside is < 1e-3)."""
    a = torch.randn(20, 2, generator=g, dtype=torch.float64) * 1.5
    c = torch.randn(20, generator=g, dtype=torch.float64) * 0.3
    decode = lambda z: torch.tanh(z @ a.T + c)  # noqa: E731
    sigma_p = 0.3
    x = decode(torch.randn(2, 2, generator=g, dtype=torch.float64)) + sigma_p * torch.randn(2, 20, generator=g, dtype=torch.float64)
    axis = torch.linspace(-4, 4, 801, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)  # (801^2, 2)
    log_joint = torch.cat([prob.standard_normal_log_prob(z)[:, None]
                           + prob.isotropic_gaussian_log_prob(x, decode(z)[:, None], sigma_p)
                           for z in grid.split(40_000)])  # (801^2, 2)
    exact = prob.grid_log_integral(log_joint.T, (axis[1] - axis[0]).item() ** 2)
    return x, decode, sigma_p, exact


def test_ais_matches_the_grid_integral_of_a_two_dimensional_latent(two_d, g):
    """With a nonlinear decoder and 2 latents, q* (from the prior) + AIS lands within 4 standard errors of the grid value."""
    x, decode, sigma_p, exact = two_d
    zero = torch.zeros(2, 2, dtype=torch.float64)
    est, se = repeated(lambda: reference(x, decode, sigma_p, zero, zero, g))
    assert torch.all((est - exact).abs() < 4 * se + 0.05), (est, exact, se)


def test_eq9_matches_the_grid_integral_with_a_fitted_proposal(two_d, g):
    """Eq. 9 with M = 1000 from q* (fitted from the prior) lands within 4 standard errors of the grid value."""
    x, decode, sigma_p, exact = two_d
    zero = torch.zeros(2, 2, dtype=torch.float64)
    m, lv, _ = prob.fit_diag_gaussian(x, decode, sigma_p, zero, zero, 300, 4, 0.05, g)
    est, se = repeated(lambda: prob.log_mean_exp(prob.importance_log_weights(x, m, lv, decode, sigma_p, 1000, 1000, g)))
    assert torch.all((est - exact).abs() < 4 * se + 0.05), (est, exact, se)


def test_fitted_q_reaches_the_exact_posterior_when_it_is_diagonal(g):
    """With orthogonal columns in W the posterior is a diagonal Gaussian; q* fitted by Adam reaches its mean and variance."""
    sigma_p = 0.4
    q, _ = torch.linalg.qr(torch.randn(6, 3, generator=g, dtype=torch.float64))
    w = q * torch.tensor([1.5, 0.7, 0.3], dtype=torch.float64)
    x = torch.randn(4, 6, generator=g, dtype=torch.float64)
    post_var = 1.0 / (1.0 + (w ** 2).sum(0) / sigma_p ** 2)  # diagonal of (I + W^T W / sigma_p^2)^-1
    zero = torch.zeros(4, 3, dtype=torch.float64)
    m, lv, trace = prob.fit_diag_gaussian(x, lambda z: z @ w.T, sigma_p, zero, zero, 1000, 8, 0.05, g)
    torch.testing.assert_close(m, post_var * (x @ w) / sigma_p ** 2, atol=0.02, rtol=0)
    torch.testing.assert_close(lv.exp(), post_var.expand(4, 3), atol=0, rtol=0.1)
    assert trace.shape == (1000, 4)


def test_sigmoid_schedule_runs_from_zero_to_one_increasing():
    """The annealing schedule starts at 0, ends at 1 and increases strictly."""
    beta = prob.sigmoid_schedule(50)
    assert beta[0] == 0 and beta[-1] == 1 and torch.all(beta.diff() > 0) and len(beta) == 51
