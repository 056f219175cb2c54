"""Probability for every VAE question, written by hand (tested against ``torch.distributions``).

Notation (brief, section 3.1): latent z in R^d, prior p(z) = N(0, I), likelihood
p(x|z) = N(G(z), sigma_p^2 I) over D pixels, proposal q_x(z) = N(mu, diag(sigma^2)) stored as
r = log sigma^2 (section 3.2). Log-densities are summed over the last dimension.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

LOG_2PI = math.log(2.0 * math.pi)


def diag_gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, diag(exp(logvar))), summed over the last dimension; broadcasts."""
    # log N = -1/2 * sum_j [ log 2pi + r_j + (x_j - mu_j)^2 / exp(r_j) ]
    return -0.5 * (LOG_2PI + logvar + (x - mean) ** 2 * torch.exp(-logvar)).sum(-1)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I), summed over the last dimension."""
    return -0.5 * (LOG_2PI + z ** 2).sum(-1)


def isotropic_gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, sigma: float) -> torch.Tensor:
    """log N(x; mean, sigma^2 I) over the last dimension: the likelihood p(x|z) of section 3.1.1."""
    dim = x.shape[-1]
    # log N = -D/2 log(2 pi sigma^2) - ||x - mean||^2 / (2 sigma^2)
    return -0.5 * dim * (LOG_2PI + 2.0 * math.log(sigma)) - ((x - mean) ** 2).sum(-1) / (2.0 * sigma ** 2)


def kl_to_standard_normal(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) per dimension, exact (the brief's Eq. 7, corrected).

    Eq. 7 prints mu^2 + sigma^2 - log(sigma) - 1; the exact value is half of mu^2 + sigma^2 - log(sigma^2) - 1.
    """
    return 0.5 * (mean ** 2 + torch.exp(logvar) - logvar - 1.0)


def reparameterize(mean: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
    """z = mu + sigma * eps with sigma = exp(r / 2), eps ~ N(0, I) (section 3.1.4)."""
    if eps is None:
        eps = torch.randn_like(mean)
    return mean + torch.exp(0.5 * logvar) * eps


def brief_loss(x: torch.Tensor, x_mean: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The training loss of Eq. 5 with the aggregation of section 3.2, returned as (mse, kl).

    mse: squared error averaged over pixels and batch (``nn.MSELoss``); kl: the exact KL averaged
    over latent dimensions and batch. The loss is mse + kl. Inputs x, x_mean: (B, D); mean, logvar: (B, d).
    """
    mse = ((x - x_mean) ** 2).mean()
    kl = kl_to_standard_normal(mean, logvar).mean()
    return mse, kl


def negative_elbo(x: torch.Tensor, x_mean: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, sigma_p: float) -> torch.Tensor:
    """-ELBO per image in nats (Eq. 4) for p(x|z) = N(G(z), sigma_p^2 I), one z sample; shape (B,)."""
    return -isotropic_gaussian_log_prob(x, x_mean, sigma_p) + kl_to_standard_normal(mean, logvar).sum(-1)


def importance_log_weights(
    x: torch.Tensor,
    mean: torch.Tensor,
    logvar: torch.Tensor,
    decode: Callable[[torch.Tensor], torch.Tensor],
    sigma_p: float,
    samples: int = 1000,
    chunk: int = 250,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """log w_i = log p(z_i) + log p(x|z_i) - log q_x(z_i) for z_i ~ q_x (Eq. 9's summands); (M, B).

    x: (B, D); mean, logvar: (B, d); decode maps (N, d) latents to (N, D) means G(z).
    The M samples are drawn in chunks so that memory stays at chunk * B decoder outputs.
    """
    def log_joint(z):  # (m, B, d) -> (m, B)
        x_mean = decode(z.reshape(-1, z.shape[-1])).reshape(z.shape[0], x.shape[0], -1)  # (m, B, D)
        return standard_normal_log_prob(z) + isotropic_gaussian_log_prob(x, x_mean, sigma_p)
    return log_weights(mean, logvar, log_joint, samples, chunk, generator)


def log_weights(mean: torch.Tensor, logvar: torch.Tensor, log_joint: Callable[[torch.Tensor], torch.Tensor],
                samples: int, chunk: int = 250, generator: torch.Generator | None = None) -> torch.Tensor:
    """log w_i = log p(x, z_i) - log q(z_i), z_i ~ q = N(mean, diag exp(logvar)), for any model; (M, B).

    mean, logvar: (B, d); log_joint maps latents (m, B, d) to log p(x, z) (m, B). Their average is a
    Monte Carlo ELBO (no closed-form KL), their log-mean-exp the estimate of log p(x) of Eq. 9.
    """
    out = []
    for start in range(0, samples, chunk):
        m = min(chunk, samples - start)
        eps = torch.randn((m, *mean.shape), generator=generator, dtype=mean.dtype).to(mean.device)  # (m, B, d)
        z = reparameterize(mean, logvar, eps)  # (m, B, d)
        out.append(log_joint(z) - diag_gaussian_log_prob(z, mean, logvar))  # (m, B)
    return torch.cat(out)


def log_mean_exp(log_w: torch.Tensor) -> torch.Tensor:
    """log (1/M) sum_i exp(log_w_i) over dim 0, stably (Eq. 9): logsumexp - log M; (B,)."""
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


def effective_sample_size(log_w: torch.Tensor) -> torch.Tensor:
    """(sum_i w_i)^2 / sum_i w_i^2 over dim 0, in log space; (B,). M for equal weights, 1 when one dominates."""
    return torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0))


def log_mean_exp_se(log_w: torch.Tensor) -> torch.Tensor:
    """Delta-method standard error of ``log_mean_exp`` over dim 0, (B,): sd(w) / (sqrt(M) mean(w)),
    which is sqrt((M / ESS - 1) / M) with ESS the effective sample size."""
    m = log_w.shape[0]
    return torch.sqrt((m / effective_sample_size(log_w) - 1).clamp(min=0) / m)


# ---------------------------------------------------------------- the companion's models (peers.md)
def bernoulli_log_prob(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """log Bernoulli(x; sigmoid(logits)) summed over the last dimension; x in {0, 1}, broadcasts.

    log p = x log s(l) + (1 - x) log(1 - s(l)) = x l - log(1 + e^l), written with softplus so that
    large |logits| neither overflow nor lose precision.
    """
    return (x * logits - torch.nn.functional.softplus(logits)).sum(-1)


def bernoulli_sample(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """x ~ Bernoulli(probs) from uniforms: x = 1[u < p], u ~ U(0, 1); same shape as probs."""
    u = torch.rand(probs.shape, generator=generator, dtype=probs.dtype).to(probs.device)
    return (u < probs).to(probs.dtype)


def gaussian_sample(mean: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """z ~ N(mean, diag exp(logvar)) from standard-normal draws (``reparameterize`` with fresh eps)."""
    eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype).to(mean.device)
    return reparameterize(mean, logvar, eps)


def mixture_log_prob(z: torch.Tensor, weights_logits: torch.Tensor, means: torch.Tensor, logvars: torch.Tensor) -> torch.Tensor:
    """log sum_k pi_k N(z; m_k, diag exp(r_k)) for z (..., d); pi = softmax(weights_logits) (K,),
    means and logvars (K, d); result (...,)."""
    # log p(z) = logsumexp_k [ log pi_k + log N(z; m_k, diag exp(r_k)) ]
    log_pi = torch.log_softmax(weights_logits, -1)  # (K,)
    per_component = diag_gaussian_log_prob(z.unsqueeze(-2), means, logvars)  # (..., K)
    return torch.logsumexp(log_pi + per_component, -1)


def mixture_sample(n: int, weights_logits: torch.Tensor, means: torch.Tensor, logvars: torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """n draws from the mixture of ``mixture_log_prob``: a component k by inverting the CDF of pi at a
    uniform, then z = m_k + sigma_k * eps; (n, d)."""
    pi = torch.softmax(weights_logits.detach(), -1).cpu()  # (K,)
    u = torch.rand(n, generator=generator, dtype=pi.dtype)
    # k = the first index whose cumulative weight exceeds u (clamped against rounding at the top)
    k = torch.searchsorted(pi.cumsum(0), u, right=True).clamp(max=len(pi) - 1).to(means.device)  # (n,)
    return gaussian_sample(means[k], logvars[k], generator)


def monte_carlo_kl(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, prior_log_prob: Callable) -> torch.Tensor:
    """KL(q || p) estimated at z ~ q = N(mean, diag exp(logvar)): log q(z) - log p(z), per sample; for
    priors without a closed-form KL (a mixture). Shapes: z, mean, logvar (..., d); result (...,)."""
    return diag_gaussian_log_prob(z, mean, logvar) - prior_log_prob(z)


def bernoulli_log_prob_pairs(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """log Bernoulli(x_n; sigmoid(logits_g)) for every pair (n, g): x (N, D), logits (G, D) -> (N, G).

    ``bernoulli_log_prob`` as one product, x l^T - sum_j softplus(l_j), so that N images against
    G decoded latents (a whole grid) never hold an (N, G, D) tensor.
    """
    return x @ logits.T - torch.nn.functional.softplus(logits).sum(-1)


def grid_log_integral(log_f: torch.Tensor, cell_area: float) -> torch.Tensor:
    """log of the integral of exp(log_f) by the midpoint rule on an equally spaced grid: the grid
    points are the last dimension, each standing for a cell of area ``cell_area``; (...,)."""
    # log sum_g f(z_g) dA = logsumexp_g log f(z_g) + log dA
    return torch.logsumexp(log_f, -1) + math.log(cell_area)


def score_function_grads(f: Callable[[torch.Tensor], torch.Tensor], mean: torch.Tensor, logvar: torch.Tensor,
                         eps: torch.Tensor) -> torch.Tensor:
    """One estimate per sample of the gradient of E_q[f(z)] in the mean of q = N(mean, diag exp(logvar)),
    by the score function (REINFORCE): f(z) grad_mean log q(z) = f(z) (z - mean) / sigma^2.

    eps: (n, d) standard-normal draws, z = mean + sigma eps; f maps (n, d) to (n,); result (n, d).
    """
    with torch.no_grad():
        z = reparameterize(mean, logvar, eps)
        return f(z).unsqueeze(-1) * (z - mean) * torch.exp(-logvar)


def reparameterization_grads(f: Callable[[torch.Tensor], torch.Tensor], mean: torch.Tensor, logvar: torch.Tensor,
                             eps: torch.Tensor) -> torch.Tensor:
    """One estimate per sample of the same gradient by reparameterisation: grad_mean f(mean + sigma eps)
    = f'(z), by autograd; the rows of z are independent, so the gradient of their sum holds each
    row's own gradient. eps (n, d); result (n, d)."""
    means = mean.detach().expand_as(eps).clone().requires_grad_(True)  # (n, d)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(f(reparameterize(means, logvar.detach(), eps)).sum(), means)
    return grad


def bernoulli_score(b: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """d/dl log Bernoulli(b; sigmoid(l)) = b - sigmoid(l), elementwise: the score of a Bernoulli in its logit."""
    return b - torch.sigmoid(logits)


def binary_concrete_sample(logits: torch.Tensor, temperature: float, u: torch.Tensor) -> torch.Tensor:
    """The continuous relaxation of b ~ Bernoulli(sigmoid(logits)) (binary Concrete, Maddison et al. 2017;
    Gumbel-softmax, Jang et al. 2017) from uniforms u: sigmoid((logits + log u - log(1 - u)) / temperature).

    As temperature -> 0 it tends to the hard sample 1[u > 1 - p] (a Bernoulli(p) draw), whose derivative
    in the logits is zero almost everywhere; at any temperature it is differentiable in the logits.
    """
    return torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / temperature)
