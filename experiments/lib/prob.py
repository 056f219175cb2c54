# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
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


def fit_diag_gaussian(x: torch.Tensor, decode: Callable[[torch.Tensor], torch.Tensor], sigma_p: float,
                      mean: torch.Tensor, logvar: torch.Tensor, steps: int, samples: int = 4, lr: float = 0.05,
                      generator: torch.Generator | None = None, kl_weight: float = 1.0,
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image q*(z) = N(mu, diag exp(r)) that maximizes the ELBO (Eq. 4) with the generator fixed.

    x: (B, D); mean, logvar: (B, d), the starting point. Adam on the reparameterized ELBO with
    ``samples`` draws per image and step, its learning rate decayed linearly to zero so that the last
    steps average the gradient noise out; the images are independent (each has its own mu, r).
    Returns the final mean and logvar (B, d) and the ELBO estimate of every step, (steps, B).
    ``kl_weight`` = beta maximizes E_q log p(x|z) - beta KL instead (the objective Q1's encoder was trained on).
    Only mu and r receive gradients: freeze the generator (``requires_grad_(False)``) to save work.
    """
    mean, logvar = mean.detach().clone().requires_grad_(True), logvar.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([mean, logvar], lr=lr)
    decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 - step / steps)
    trace = []
    for _ in range(steps):
        eps = torch.randn((samples, *mean.shape), generator=generator, dtype=mean.dtype).to(mean.device)  # (K, B, d)
        z = reparameterize(mean, logvar, eps)  # (K, B, d)
        x_mean = decode(z.reshape(-1, z.shape[-1])).reshape(samples, x.shape[0], -1)  # (K, B, D)
        # ELBO = E_q log p(x|z) - beta KL(q || p), the expectation by the K draws, the KL exact (Eq. 7)
        elbo = (isotropic_gaussian_log_prob(x, x_mean, sigma_p).mean(0)
                - kl_weight * kl_to_standard_normal(mean, logvar).sum(-1))
        opt.zero_grad(set_to_none=True)
        (-elbo.sum()).backward()
        opt.step()
        decay.step()
        trace.append(elbo.detach())
    return mean.detach(), logvar.detach(), torch.stack(trace)


def sigmoid_schedule(steps: int, sharpness: float = 4.0) -> torch.Tensor:
    """Inverse temperatures 0 = beta_0 < ... < beta_T = 1, spaced densely at both ends; (T + 1,)."""
    # beta_t = (s(a (2t/T - 1)) - s(-a)) / (s(a) - s(-a)), s the logistic function (Grosse et al. 2015)
    s = torch.sigmoid(sharpness * torch.linspace(-1.0, 1.0, steps + 1, dtype=torch.float64))
    return (s - s[0]) / (s[-1] - s[0])


def ais_log_weights(x: torch.Tensor, decode: Callable[[torch.Tensor], torch.Tensor], sigma_p: float,
                    mean: torch.Tensor, logvar: torch.Tensor, steps: int, chains: int = 8, leapfrog: int = 2,
                    step_size: float = 0.2, target_accept: float = 0.65, generator: torch.Generator | None = None,
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Annealed importance sampling (Neal 2001) of log p(x) with HMC transitions (Wu et al. 2017); (chains, B).

    Path from the start q0 = N(mean, diag exp(logvar)) (x: (B, D); mean, logvar: (B, d)) to the
    posterior: gamma_beta(z) = q0(z)^(1 - beta) p(x, z)^beta = q0(z) w(z)^beta with w = p(z) p(x|z) / q0(z),
    beta on ``sigmoid_schedule(steps)``. Each chain starts at z ~ q0 and collects
    log W = sum_t (beta_t - beta_{t-1}) log w(z_{t-1}), then moves by one HMC transition
    (``leapfrog`` steps) that leaves gamma_{beta_t} invariant; E[W] = p(x) for every chain, so
    log mean_c W_c estimates log p(x), biased low by less the more steps.
    HMC runs in whitened coordinates u = (z - mean) / sigma, so the start is N(0, I) and one step
    size fits all dimensions; each chain tunes its own step size toward ``target_accept``
    (eps <- eps exp(0.05 (accepted - target))), so the chains stay independent of one another.
    Returns log W (chains, B) and the mean acceptance rate per image (B,).
    """
    sigma = torch.exp(0.5 * logvar)  # (B, d)
    betas = sigmoid_schedule(steps).tolist()

    def log_w_and_grad(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log w(z(u)) and its gradient in u, for u (C, B, d); log q0(z) = log N(u; 0, I) - sum log sigma."""
        with torch.enable_grad():
            u = u.detach().requires_grad_(True)
            z = mean + sigma * u
            x_mean = decode(z.reshape(-1, z.shape[-1])).reshape(*u.shape[:2], -1)  # (C, B, D)
            log_w = (standard_normal_log_prob(z) + isotropic_gaussian_log_prob(x, x_mean, sigma_p)
                     - standard_normal_log_prob(u) + torch.log(sigma).sum(-1))  # (C, B)
            (grad,) = torch.autograd.grad(log_w.sum(), u)
        return log_w.detach(), grad

    u = torch.randn((chains, *mean.shape), generator=generator, dtype=mean.dtype).to(mean.device)  # (C, B, d)
    log_w, grad = log_w_and_grad(u)
    log_big_w = torch.zeros_like(log_w)  # (C, B)
    eps = torch.full((chains, mean.shape[0], 1), step_size, dtype=mean.dtype, device=mean.device)  # per chain
    accepted = torch.zeros(mean.shape[0], dtype=mean.dtype, device=mean.device)
    for prev, beta in zip(betas, betas[1:]):
        log_big_w = log_big_w + (beta - prev) * log_w
        # HMC on log gamma_beta(u) = log N(u; 0, I) + beta log w, gradient -u + beta grad log w
        p0 = torch.randn(u.shape, generator=generator, dtype=u.dtype).to(u.device)
        un, lwn, gn, p = u, log_w, grad, p0 + 0.5 * eps * (-u + beta * grad)
        for k in range(leapfrog):
            un = un + eps * p
            lwn, gn = log_w_and_grad(un)
            p = p + (eps if k < leapfrog - 1 else 0.5 * eps) * (-un + beta * gn)
        # Metropolis: log acceptance = H(u, p0) - H(un, p), H = -log gamma_beta + |p|^2 / 2
        log_accept = (beta * lwn - 0.5 * (un ** 2).sum(-1) - 0.5 * (p ** 2).sum(-1)
                      - beta * log_w + 0.5 * (u ** 2).sum(-1) + 0.5 * (p0 ** 2).sum(-1))  # (C, B)
        accept = torch.rand(log_accept.shape, generator=generator, dtype=u.dtype).to(u.device).log() < log_accept
        u, log_w, grad = (torch.where(accept[..., None], un, u), torch.where(accept, lwn, log_w),
                          torch.where(accept[..., None], gn, grad))
        hit = accept.to(u.dtype)  # (C, B)
        accepted = accepted + hit.mean(0) / steps
        eps = eps * torch.exp(0.05 * (hit - target_accept))[..., None]
    return log_big_w, accepted


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


# ---------------------------------------------------------------- the companion's models (other courses' texts)
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


def _near_zero(logits: torch.Tensor, width: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask |l| < width, l with those entries moved to ``width``): the second is safe where a formula divides by l,
    and ``torch.where`` then takes the series there without a NaN reaching the gradient."""
    small = logits.abs() < width
    return small, torch.where(small, torch.full_like(logits, width), logits)


def continuous_bernoulli_log_norm(logits: torch.Tensor) -> torch.Tensor:
    """log C(lambda) of the continuous Bernoulli (Loaiza-Ganem and Cunningham 2019, Eq. 2), elementwise.

    C(lambda) = 2 artanh(1 - 2 lambda) / (1 - 2 lambda); with lambda = sigmoid(l), 1 - 2 lambda = -tanh(l/2) and
    artanh(1 - 2 lambda) = -l/2, so C = l / tanh(l/2), even in l, with the series 2 + l^2/6 - ... near 0:
    log C = log 2 + l^2/12 - 7 l^4/1440 + O(l^6).
    """
    small, safe = _near_zero(logits, 1e-2)
    exact = torch.log(safe.abs()) - torch.log(torch.tanh(safe.abs() / 2))
    return torch.where(small, math.log(2.0) + logits ** 2 / 12 - 7 * logits ** 4 / 1440, exact)


def continuous_bernoulli_log_prob(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """log CB(x; sigmoid(logits)) summed over the last dimension, for x in [0, 1]; broadcasts.

    log p = x log lambda + (1 - x) log(1 - lambda) + log C(lambda) = x l - softplus(l) + log C(l): the Bernoulli's
    expression made a density on [0, 1] by its normaliser.
    """
    return (x * logits - torch.nn.functional.softplus(logits) + continuous_bernoulli_log_norm(logits)).sum(-1)


def continuous_bernoulli_mean(logits: torch.Tensor) -> torch.Tensor:
    """E[x] of CB(sigmoid(l)), elementwise: lambda / (2 lambda - 1) + 1 / (2 artanh(1 - 2 lambda))
    = sigmoid(l) / tanh(l/2) - 1/l, with the series 1/2 + l/12 - l^3/720 near 0 (the two terms cancel there).
    Not sigmoid(l): the mean lies between 1/2 and lambda."""
    small, safe = _near_zero(logits, 1e-1)
    exact = torch.sigmoid(safe) / torch.tanh(safe / 2) - 1 / safe
    return torch.where(small, 0.5 + logits / 12 - logits ** 3 / 720, exact)


def continuous_bernoulli_sample(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """x ~ CB(sigmoid(logits)) by inverting the CDF F(x) = (e^{l x} - 1) / (e^l - 1) at u ~ U(0, 1):
    x = log(1 + u (e^l - 1)) / l, written for l < 0 (where e^l - 1 cannot overflow) and mirrored for l > 0
    (x -> 1 - x maps CB(l) to CB(-l)); x = u at l = 0 (within 1e-12). Same shape as logits."""
    u = torch.rand(logits.shape, generator=generator, dtype=logits.dtype).to(logits.device)
    small, safe = _near_zero(logits, 1e-12)  # the formula is accurate down to tiny |l| (expm1, log1p); x = u only at l = 0
    neg = -safe.abs()  # (...,) the negative of |l|
    v = torch.where(safe < 0, u, 1 - u)  # the mirrored uniform for l > 0
    x = torch.log1p(v * torch.expm1(neg)) / neg
    return torch.where(small, u, torch.where(safe < 0, x, 1 - x))


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
