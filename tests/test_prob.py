"""The hand-written probability code against torch.distributions and exact answers."""
from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from experiments.lib import prob, vae


@pytest.fixture
def g():
    return torch.Generator().manual_seed(0)


def test_diag_gaussian_log_prob_matches_torch(g):
    """log N(x; mu, diag exp(r)) equals torch's Normal log_prob summed over the last dimension."""
    x, mu, r = (torch.randn(7, 5, generator=g, dtype=torch.float64) for _ in range(3))
    ref = Normal(mu, torch.exp(0.5 * r)).log_prob(x).sum(-1)
    torch.testing.assert_close(prob.diag_gaussian_log_prob(x, mu, r), ref, atol=1e-5, rtol=0)


def test_standard_normal_log_prob_matches_torch(g):
    """log N(z; 0, I) equals torch's Normal(0, 1) log_prob summed over the last dimension."""
    z = torch.randn(4, 9, generator=g, dtype=torch.float64)
    ref = Normal(torch.zeros(9, dtype=torch.float64), torch.ones(9, dtype=torch.float64)).log_prob(z).sum(-1)
    torch.testing.assert_close(prob.standard_normal_log_prob(z), ref, atol=1e-5, rtol=0)


def test_isotropic_gaussian_log_prob_matches_torch(g):
    """log N(x; m, sigma^2 I) equals torch's Normal(m, sigma) log_prob summed over pixels."""
    x, m = torch.randn(3, 784, generator=g, dtype=torch.float64), torch.randn(3, 784, generator=g, dtype=torch.float64)
    ref = Normal(m, 0.4).log_prob(x).sum(-1)
    torch.testing.assert_close(prob.isotropic_gaussian_log_prob(x, m, 0.4), ref, atol=1e-5, rtol=0)


def test_kl_matches_torch(g):
    """The closed-form KL per dimension equals torch's kl_divergence of two Normals."""
    mu, r = torch.randn(6, 8, generator=g, dtype=torch.float64), torch.randn(6, 8, generator=g, dtype=torch.float64)
    ref = kl_divergence(Normal(mu, torch.exp(0.5 * r)), Normal(torch.zeros_like(mu), torch.ones_like(mu)))
    torch.testing.assert_close(prob.kl_to_standard_normal(mu, r), ref, atol=1e-5, rtol=0)


def test_kl_matches_monte_carlo(g):
    """The closed-form KL agrees with E_q[log q - log p] estimated from 400,000 samples."""
    mu, r = torch.tensor([0.7, -1.2, 0.0], dtype=torch.float64), torch.tensor([-0.5, 0.8, 0.0], dtype=torch.float64)
    eps = torch.randn(400_000, 3, generator=g, dtype=torch.float64)
    z = prob.reparameterize(mu, r, eps)
    q = Normal(mu, torch.exp(0.5 * r)).log_prob(z)
    p = Normal(0.0, 1.0).log_prob(z)
    mc = (q - p).mean(0)
    se = (q - p).std(0) / math.sqrt(len(z))
    assert torch.all((mc - prob.kl_to_standard_normal(mu, r)).abs() < 4 * se + 1e-12)


def test_negative_elbo_matches_torch(g):
    """-ELBO with one z = -log N(x; G(z), sigma_p^2 I) + KL(q || p), both from torch.distributions."""
    x, x_mean = torch.randn(3, 784, generator=g, dtype=torch.float64), torch.randn(3, 784, generator=g, dtype=torch.float64)
    mu, r = torch.randn(3, 7, generator=g, dtype=torch.float64), torch.randn(3, 7, generator=g, dtype=torch.float64)
    kl = kl_divergence(Normal(mu, torch.exp(0.5 * r)), Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(-1)
    ref = -Normal(x_mean, 0.4).log_prob(x).sum(-1) + kl
    torch.testing.assert_close(prob.negative_elbo(x, x_mean, mu, r, 0.4), ref, atol=1e-5, rtol=0)


def test_brief_eq7_is_not_the_kl():
    """The brief's Eq. 7, mu^2 + sigma^2 - log sigma - 1, is 2 KL + log sigma, not the KL."""
    mu, sigma = torch.tensor(0.3, dtype=torch.float64), torch.tensor(1.7, dtype=torch.float64)
    kl = prob.kl_to_standard_normal(mu, torch.log(sigma ** 2))
    eq7 = mu ** 2 + sigma ** 2 - torch.log(sigma) - 1
    torch.testing.assert_close(eq7, 2 * kl + torch.log(sigma))
    assert not torch.isclose(eq7, kl)


def test_reparameterize_has_the_right_moments_and_gradients(g):
    """z = mu + exp(r/2) eps has mean mu and variance exp(r), and is differentiable in mu and r."""
    mu = torch.tensor([1.5, -2.0], requires_grad=True)
    r = torch.tensor([0.4, -1.0], requires_grad=True)
    z = prob.reparameterize(mu, r, torch.randn(200_000, 2, generator=g))
    torch.testing.assert_close(z.mean(0), mu.detach(), atol=0.01, rtol=0)
    torch.testing.assert_close(z.var(0), torch.exp(r.detach()), atol=0.02, rtol=0)
    z.sum().backward()
    assert mu.grad is not None and r.grad is not None


def test_brief_loss_is_a_scaled_beta_elbo(g):
    """(D / 2 sigma_p^2) (MSE + KL-mean) = -log p(x|z) - const + beta * KL with beta = D / (2 sigma_p^2 d)."""
    d, sigma_p = 200, 0.4
    x, x_mean = torch.randn(5, 784, generator=g, dtype=torch.float64), torch.randn(5, 784, generator=g, dtype=torch.float64)
    mu, r = torch.randn(5, d, generator=g, dtype=torch.float64), torch.randn(5, d, generator=g, dtype=torch.float64)
    mse, kl = (torch.stack(t) for t in zip(*(prob.brief_loss(x[i:i + 1], x_mean[i:i + 1], mu[i:i + 1], r[i:i + 1]) for i in range(5))))
    scaled = 784 / (2 * sigma_p ** 2) * (mse + kl)
    const = 0.5 * 784 * math.log(2 * math.pi * sigma_p ** 2)
    beta = vae.effective_kl_weight(sigma_p, d)
    expected = (-prob.isotropic_gaussian_log_prob(x, x_mean, sigma_p) - const
                + beta * prob.kl_to_standard_normal(mu, r).sum(-1))
    torch.testing.assert_close(scaled, expected)
    assert beta == pytest.approx(12.25)


def linear_gaussian(g, d=3, D=6, sigma_p=0.4):
    w = torch.randn(D, d, generator=g, dtype=torch.float64) * 0.5
    b = torch.randn(D, generator=g, dtype=torch.float64) * 0.2
    x = torch.randn(4, D, generator=g, dtype=torch.float64)
    exact = MultivariateNormal(b, w @ w.T + sigma_p ** 2 * torch.eye(D, dtype=torch.float64)).log_prob(x)
    return w, b, x, exact


def test_importance_sampling_matches_the_linear_gaussian_marginal(g):
    """With G(z) = Wz + b, Eq. 9 recovers the exact log N(x; b, WW^T + sigma_p^2 I) within its Monte Carlo error."""
    w, b, x, exact = linear_gaussian(g)
    mean = torch.zeros(4, 3, dtype=torch.float64) + 0.1
    logvar = torch.full((4, 3), -0.5, dtype=torch.float64)
    log_w = prob.importance_log_weights(x, mean, logvar, lambda z: z @ w.T + b, 0.4, 20_000, 5_000, g)
    estimate, se = prob.log_mean_exp(log_w), prob.log_mean_exp_se(log_w)
    assert torch.all((estimate - exact).abs() < 4 * se + 1e-6), (estimate, exact, se)


def test_importance_sampling_with_the_true_posterior_has_zero_variance(g):
    """With orthogonal columns in W the posterior is diagonal; with q_x equal to it every weight is p(x) exactly."""
    sigma_p = 0.4
    q, _ = torch.linalg.qr(torch.randn(6, 3, generator=g, dtype=torch.float64))
    w, b = q * torch.tensor([1.5, 0.7, 0.3], dtype=torch.float64), torch.zeros(6, dtype=torch.float64)
    x = torch.randn(4, 6, generator=g, dtype=torch.float64)
    exact = MultivariateNormal(b, w @ w.T + sigma_p ** 2 * torch.eye(6, dtype=torch.float64)).log_prob(x)
    post_var = 1.0 / (1.0 + (w ** 2).sum(0) / sigma_p ** 2)  # diagonal of (I + W^T W / sigma_p^2)^-1
    mean = post_var * ((x - b) @ w) / sigma_p ** 2  # (4, 3)
    logvar = torch.log(post_var).expand(4, 3)
    log_w = prob.importance_log_weights(x, mean, logvar, lambda z: z @ w.T + b, sigma_p, 10, 10, g)
    torch.testing.assert_close(log_w, exact.expand(10, 4))
    torch.testing.assert_close(prob.log_mean_exp_se(log_w), torch.zeros(4, dtype=torch.float64), atol=1e-6, rtol=0)


def test_more_samples_never_lower_the_bound_on_average(g):
    """E[log mean of M weights] does not decrease with M; M = 1 is the ELBO, which is below log p(x)."""
    w, b, x, exact = linear_gaussian(g)
    mean, logvar = torch.zeros(4, 3, dtype=torch.float64), torch.zeros(4, 3, dtype=torch.float64)
    log_w = prob.importance_log_weights(x, mean, logvar, lambda z: z @ w.T + b, 0.4, 64 * 2000, 64_000, g)
    # groups of m weights: (M_total, 4) -> (m, M_total / m, 4), one estimate per group, averaged
    means = [prob.log_mean_exp(log_w.view(-1, m, 4).transpose(0, 1)).mean(0) for m in (1, 4, 16, 64)]
    for smaller, larger in zip(means, means[1:]):
        assert torch.all(larger >= smaller - 1e-3)
    assert torch.all(means[0] < exact)


def test_log_mean_exp_is_stable_for_tiny_probabilities():
    """Eq. 9 in log space: weights of e^-2000 give log p = -2000 + log mean, not -inf."""
    log_w = torch.tensor([[-2000.0], [-2001.0], [-2002.0]], dtype=torch.float64)
    expected = -2000 + math.log((1 + math.exp(-1) + math.exp(-2)) / 3)
    assert prob.log_mean_exp(log_w).item() == pytest.approx(expected, abs=1e-9)


def test_effective_sample_size_of_equal_and_of_one_dominant_weight():
    """ESS is M for equal weights and 1 when one weight is e^50 times the others."""
    equal = torch.zeros(8, 1, dtype=torch.float64)
    dominant = torch.tensor([[50.0]] + [[0.0]] * 7, dtype=torch.float64)
    assert prob.effective_sample_size(equal).item() == pytest.approx(8)
    assert prob.effective_sample_size(dominant).item() == pytest.approx(1, abs=1e-12)


def test_log_mean_exp_se_matches_the_spread_of_repeated_estimates(g):
    """The delta-method standard error predicts the spread of log-mean-exp over independent repeats."""
    log_w = torch.randn(500, 2000, generator=g, dtype=torch.float64) * 0.8  # 2000 repeats of M = 500
    estimates = prob.log_mean_exp(log_w)
    predicted = prob.log_mean_exp_se(log_w).mean()
    assert estimates.std().item() == pytest.approx(predicted.item(), rel=0.1)


def test_bernoulli_log_prob_matches_torch(g):
    """The Bernoulli log-mass from logits equals torch's Bernoulli log_prob, extreme logits included."""
    logits = torch.cat([torch.randn(4, 30, generator=g, dtype=torch.float64) * 5, torch.full((1, 30), 60.0, dtype=torch.float64)])
    x = (torch.rand(5, 30, generator=g, dtype=torch.float64) < 0.5).double()
    ref = torch.distributions.Bernoulli(logits=logits).log_prob(x).sum(-1)
    torch.testing.assert_close(prob.bernoulli_log_prob(x, logits), ref, atol=1e-9, rtol=0)


def test_bernoulli_sample_has_the_right_mean(g):
    """Bernoulli draws from uniforms have mean p within four standard errors."""
    p = torch.tensor([0.02, 0.3, 0.5, 0.97], dtype=torch.float64)
    x = prob.bernoulli_sample(p.expand(200_000, 4), g)
    se = (p * (1 - p) / 200_000).sqrt()
    assert torch.all((x.mean(0) - p).abs() < 4 * se)


def test_gaussian_sample_has_the_right_moments(g):
    """Diagonal-Gaussian draws have the requested mean and variance within four standard errors."""
    mean, logvar = torch.tensor([1.0, -2.0], dtype=torch.float64), torch.tensor([0.5, -1.0], dtype=torch.float64)
    z = prob.gaussian_sample(mean.expand(100_000, 2), logvar.expand(100_000, 2), g)
    var = logvar.exp()
    assert torch.all((z.mean(0) - mean).abs() < 4 * (var / 1e5).sqrt())
    assert torch.all((z.var(0) - var).abs() < 4 * var * math.sqrt(2 / 1e5))


CB_LOGITS = torch.tensor([-10.0, -3.0, -0.05, -1e-3, 0.0, 1e-5, 0.02, 0.5, 4.0, 10.0], dtype=torch.float64)


def test_continuous_bernoulli_log_prob_matches_torch(g):
    """The continuous Bernoulli log-density from logits equals torch's, near lambda = 1/2 included."""
    x = torch.rand(7, len(CB_LOGITS), generator=g, dtype=torch.float64)
    ref = torch.distributions.ContinuousBernoulli(logits=CB_LOGITS).log_prob(x)
    mine = torch.stack([prob.continuous_bernoulli_log_prob(x[:, j:j + 1], CB_LOGITS[j:j + 1]) for j in range(len(CB_LOGITS))], 1)
    torch.testing.assert_close(mine, ref, atol=1e-8, rtol=0)


def test_continuous_bernoulli_density_integrates_to_one():
    """exp(log CB(x; lambda)) integrates to 1 over [0, 1] for every logit (midpoint rule, 20,000 cells)."""
    x = ((torch.arange(20_000, dtype=torch.float64) + 0.5) / 20_000).unsqueeze(1)  # (G, 1)
    for logit in CB_LOGITS:
        mass = prob.continuous_bernoulli_log_prob(x, logit.view(1)).exp().mean()
        assert abs(mass.item() - 1) < 1e-6, (logit, mass)


def test_continuous_bernoulli_mean_matches_torch():
    """The continuous Bernoulli's mean from logits equals torch's, on both sides of the series' switch at |l| = 0.1."""
    logits = torch.cat([CB_LOGITS, torch.tensor([0.0999, 0.1001, -0.0999, -0.1001], dtype=torch.float64)])
    ref = torch.distributions.ContinuousBernoulli(logits=logits).mean
    torch.testing.assert_close(prob.continuous_bernoulli_mean(logits), ref, atol=1e-9, rtol=0)


def test_continuous_bernoulli_sample_is_the_inverse_cdf_of_its_uniform(g):
    """Each draw x from uniform u satisfies F(x) = (e^{l x} - 1) / (e^l - 1) = u (F(x) = x at l = 0), for logits of both signs."""
    logits = CB_LOGITS.expand(500, -1)
    x = prob.continuous_bernoulli_sample(logits, torch.Generator().manual_seed(3))
    u = torch.rand(logits.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    cdf = torch.where(logits == 0, x, torch.expm1(logits * x) / torch.expm1(logits))
    torch.testing.assert_close(cdf, u, atol=1e-8, rtol=0)


def mixture(g, k=3, d=2):
    return (torch.randn(k, generator=g, dtype=torch.float64), torch.randn(k, d, generator=g, dtype=torch.float64) * 2,
            torch.randn(k, d, generator=g, dtype=torch.float64) * 0.5)


def test_mixture_log_prob_matches_torch(g):
    """The mixture-of-Gaussians log-density equals torch's MixtureSameFamily of diagonal Normals."""
    logits, means, logvars = mixture(g)
    ref = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(logits=logits),
        torch.distributions.Independent(Normal(means, torch.exp(0.5 * logvars)), 1))
    z = torch.randn(6, 4, 2, generator=g, dtype=torch.float64)
    torch.testing.assert_close(prob.mixture_log_prob(z, logits, means, logvars), ref.log_prob(z), atol=1e-9, rtol=0)


def test_mixture_sample_picks_components_by_weight(g):
    """Mixture draws land nearest each (well separated) component with its weight, within 4 SE."""
    logits = torch.tensor([0.0, 1.0, -1.0], dtype=torch.float64)
    means = torch.tensor([[-10.0, 0.0], [0.0, 10.0], [10.0, 0.0]], dtype=torch.float64)
    z = prob.mixture_sample(60_000, logits, means, torch.full((3, 2), -2.0, dtype=torch.float64), g)
    share = torch.bincount(torch.cdist(z, means).argmin(1), minlength=3).double() / len(z)
    pi = torch.softmax(logits, 0)
    assert torch.all((share - pi).abs() < 4 * (pi * (1 - pi) / len(z)).sqrt())


def test_monte_carlo_kl_matches_the_closed_form_under_a_standard_normal_prior(g):
    """E_q[log q - log p] with p = N(0, I) matches the closed-form KL within four standard errors."""
    mean, logvar = torch.tensor([0.7, -1.2], dtype=torch.float64), torch.tensor([-0.5, 0.8], dtype=torch.float64)
    z = prob.gaussian_sample(mean.expand(200_000, 2), logvar.expand(200_000, 2), g)
    kl = prob.monte_carlo_kl(z, mean, logvar, prob.standard_normal_log_prob)
    exact = prob.kl_to_standard_normal(mean, logvar).sum()
    assert abs(kl.mean() - exact) < 4 * kl.std() / math.sqrt(len(z))


def test_bernoulli_log_prob_pairs_matches_torch_for_every_pair(g):
    """The (image, latent) table of Bernoulli log-masses equals torch's Bernoulli log_prob pair by pair."""
    x = (torch.rand(3, 20, generator=g, dtype=torch.float64) < 0.5).double()
    logits = torch.randn(5, 20, generator=g, dtype=torch.float64) * 4
    ref = torch.distributions.Bernoulli(logits=logits.unsqueeze(0)).log_prob(x.unsqueeze(1)).sum(-1)  # (3, 5)
    torch.testing.assert_close(prob.bernoulli_log_prob_pairs(x, logits), ref, atol=1e-9, rtol=0)


def test_grid_log_integral_of_a_gaussian_density_is_zero_and_of_its_kernel_log_2pi():
    """On a 0.05 grid over [-8, 8]^2 a normal density integrates to 1 and exp(-|z|^2 / 2) to 2 pi."""
    axis = torch.arange(-8, 8.0001, 0.05, dtype=torch.float64)
    z = torch.cartesian_prod(axis, axis)  # (G, 2)
    log_q = torch.distributions.Independent(Normal(torch.tensor([0.5, -1.0]), torch.tensor([0.7, 1.3])), 1).log_prob(z)
    assert prob.grid_log_integral(log_q.double(), 0.05 ** 2).item() == pytest.approx(0.0, abs=1e-6)
    assert prob.grid_log_integral(-0.5 * (z ** 2).sum(-1), 0.05 ** 2).item() == pytest.approx(math.log(2 * math.pi), abs=1e-9)


def test_gradient_estimators_match_the_closed_form_for_z_squared(g):
    """For q = N(mu, s^2), f(z) = z^2 both estimators average 2 mu; their variances are
    mu^4/s^2 + 14 mu^2 + 15 s^2 (score function) and 4 s^2 (reparameterisation), within 3%."""
    mu, s = 1.5, 0.7
    mean, logvar = torch.tensor([mu], dtype=torch.float64), torch.tensor([2 * math.log(s)], dtype=torch.float64)
    eps = torch.randn(2_000_000, 1, generator=g, dtype=torch.float64)
    square = lambda z: (z ** 2).sum(-1)  # noqa: E731
    sf, rp = prob.score_function_grads(square, mean, logvar, eps), prob.reparameterization_grads(square, mean, logvar, eps)
    assert sf.mean().item() == pytest.approx(2 * mu, abs=4 * sf.std().item() / math.sqrt(len(eps)))
    assert rp.mean().item() == pytest.approx(2 * mu, abs=4 * rp.std().item() / math.sqrt(len(eps)))
    assert sf.var().item() == pytest.approx(mu ** 4 / s ** 2 + 14 * mu ** 2 + 15 * s ** 2, rel=0.03)
    assert rp.var().item() == pytest.approx(4 * s ** 2, rel=0.01)


def test_binary_concrete_exceeds_one_half_with_the_bernoulli_probability(g):
    """At any temperature the relaxed sample exceeds 1/2 exactly when the logistic noise exceeds -logit: probability p."""
    logits = torch.tensor([-2.0, 0.0, 1.5], dtype=torch.float64)
    u = torch.rand(200_000, 3, generator=g, dtype=torch.float64)
    p = torch.sigmoid(logits)
    for temperature in (0.1, 1.0):
        share = (prob.binary_concrete_sample(logits, temperature, u) > 0.5).double().mean(0)
        assert torch.all((share - p).abs() < 4 * (p * (1 - p) / len(u)).sqrt())


def test_bernoulli_score_is_the_derivative_of_torchs_log_mass():
    """b - sigmoid(l) equals the autograd derivative in l of torch's Bernoulli log_prob, for b = 0 and 1."""
    logits = torch.tensor([-1.3, 0.2, 2.5], dtype=torch.float64, requires_grad=True)
    for b in (torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)):
        (grad,) = torch.autograd.grad(torch.distributions.Bernoulli(logits=logits).log_prob(b).sum(), logits)
        torch.testing.assert_close(prob.bernoulli_score(b, logits.detach()), grad, atol=1e-12, rtol=0)
