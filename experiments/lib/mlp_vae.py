# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""The companion's fully connected VAE (every course of the companion sets an MLP VAE): one model
with a choice of prior and of likelihood, its ELBO, importance-sampled log p(x), and its training loop.

Model, images flattened to x in R^D (D = 784), latent z in R^d:
    q(z|x) = N(mu(x), diag exp(r(x)))           encoder MLP D -> hidden -> 2d (ReLU or tanh between layers)
    p(z)   = N(0, I)                           prior "gaussian"
           = sum_k pi_k N(m_k, diag exp(s_k))  prior "mog" (pi, m, s learned with the networks)
    p(x|z) = prod_j Bernoulli(x_j; sigmoid(f_j(z)))              likelihood "bernoulli" (binarized pixels)
           = N(x; sigmoid(f(z)), sigma^2 I)                       likelihood "gaussian_fixed"
           = N(x; sigmoid(f(z)), diag(v)), v learned per pixel    likelihood "gaussian_learned"
           = prod_j CB(x_j; sigmoid(f_j(z)))                      likelihood "continuous_bernoulli" (pixels in [0, 1])
with the decoder MLP f: d -> hidden (reversed) -> D. The ELBO per image (one z = mu + sigma * eps;
Kingma and Welling 2013, Eq. 10 with, and Eq. 3 without, the closed-form KL):
    ELBO(x) = log p(x|z) - KL(q || p),  KL in closed form for N(0, I) (unless ``closed_form_kl`` is off),
    by log q(z|x) - log p(z) at the same z otherwise and for the mixture (which has no closed form);
    both are unbiased estimates of the same ELBO.
All probability is in ``prob.py``. Nothing here runs on import.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from experiments.lib.data import batches
from experiments.lib.prob import (bernoulli_log_prob, bernoulli_sample, continuous_bernoulli_log_prob,
                   continuous_bernoulli_mean, continuous_bernoulli_sample, diag_gaussian_log_prob, gaussian_sample,
                   kl_to_standard_normal, log_weights, log_mean_exp, log_mean_exp_se, mixture_log_prob,
                   mixture_sample, monte_carlo_kl, reparameterize, standard_normal_log_prob)

PIXELS = 28 * 28  # D
PRIORS = ("gaussian", "mog")
LIKELIHOODS = ("bernoulli", "gaussian_fixed", "gaussian_learned", "continuous_bernoulli")
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


@dataclass(frozen=True)
class Arch:
    """What builds a model (kept in every Config and checkpoint)."""

    latent_dim: int = 10  # d (DTU's M)
    hidden: tuple[int, ...] = (256, 256)  # widths of the encoder's hidden layers; the decoder mirrors them
    activation: str = "relu"  # nonlinearity between the layers, one of ACTIVATIONS
    prior: str = "gaussian"  # one of PRIORS
    components: int = 10  # K, mixture components of the "mog" prior (one per digit class, a choice)
    likelihood: str = "bernoulli"  # one of LIKELIHOODS
    sigma: float = 0.1  # pixel standard deviation of "gaussian_fixed"; the initial one of "gaussian_learned"
    sigma_min: float = 0.01  # floor of a learned sigma (background pixels are exactly 0: without it v -> 0)
    closed_form_kl: bool = True  # KL(q || N(0, I)) in closed form; False: log q(z|x) - log p(z) at the drawn z


def mlp(sizes: list[int], activation: str) -> nn.Sequential:
    """Linear layers of the given widths with ``activation`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers += [nn.Linear(a, b)] + ([ACTIVATIONS[activation]()] if i < len(sizes) - 2 else [])
    return nn.Sequential(*layers)


class MLPVAE(nn.Module):
    """Encoder, decoder, prior and likelihood of the module docstring; x is (B, D), z is (..., d)."""

    def __init__(self, arch: Arch):
        super().__init__()
        if arch.prior not in PRIORS or arch.likelihood not in LIKELIHOODS or arch.activation not in ACTIVATIONS:
            raise ValueError(f"unknown prior {arch.prior!r}, likelihood {arch.likelihood!r} or activation {arch.activation!r}")
        self.arch = arch
        d = arch.latent_dim
        self.encoder = mlp([PIXELS, *arch.hidden, 2 * d], arch.activation)
        self.decoder = mlp([d, *reversed(arch.hidden), PIXELS], arch.activation)
        if arch.prior == "mog":
            # components start spread out (means ~ N(0, I)), unit variances, equal weights
            self.mix_logits = nn.Parameter(torch.zeros(arch.components))
            self.mix_means = nn.Parameter(torch.randn(arch.components, d))
            self.mix_logvars = nn.Parameter(torch.zeros(arch.components, d))
        if arch.likelihood == "gaussian_learned":
            # v = sigma_min^2 + softplus(raw), started at sigma^2
            start = math.log(math.expm1(arch.sigma ** 2 - arch.sigma_min ** 2))
            self.pixel_raw = nn.Parameter(torch.full((PIXELS,), start))

    # ---------------------------------------------------------------- the three distributions
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, r = log sigma^2) of q(z|x), each (B, d)."""
        mean, logvar = self.encoder(x).chunk(2, dim=-1)
        return mean, logvar

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z), (...,)."""
        if self.arch.prior == "gaussian":
            return standard_normal_log_prob(z)
        return mixture_log_prob(z, self.mix_logits, self.mix_means, self.mix_logvars)

    def sample_prior(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n draws z ~ p(z), (n, d)."""
        if self.arch.prior == "gaussian":
            return torch.randn(n, self.arch.latent_dim, generator=generator).to(self.decoder[0].weight.device)
        return mixture_sample(n, self.mix_logits, self.mix_means, self.mix_logvars, generator)

    def pixel_logvar(self) -> torch.Tensor:
        """log v of the Gaussian likelihoods, (D,)."""
        if self.arch.likelihood == "gaussian_learned":
            return torch.log(self.arch.sigma_min ** 2 + nn.functional.softplus(self.pixel_raw))
        return torch.full((PIXELS,), 2 * math.log(self.arch.sigma), device=self.decoder[0].weight.device)

    def decoder_mean(self, z: torch.Tensor) -> torch.Tensor:
        """E[x|z], (..., D): sigmoid(f(z)), but for the continuous Bernoulli, whose mean is not its parameter."""
        if self.arch.likelihood == "continuous_bernoulli":
            return continuous_bernoulli_mean(self.decoder(z))
        return torch.sigmoid(self.decoder(z))

    def log_lik(self, x: torch.Tensor, z: torch.Tensor, pixels: slice = slice(None)) -> torch.Tensor:
        """log p(x|z) of the pixels ``pixels`` (all; the top half: slice(0, 392)) for x (B, D) and z (..., B, d); (..., B)."""
        if self.arch.likelihood == "bernoulli":
            return bernoulli_log_prob(x[:, pixels], self.decoder(z)[..., pixels])
        if self.arch.likelihood == "continuous_bernoulli":
            return continuous_bernoulli_log_prob(x[:, pixels], self.decoder(z)[..., pixels])
        return diag_gaussian_log_prob(x[:, pixels], self.decoder_mean(z)[..., pixels], self.pixel_logvar()[pixels])

    def log_joint(self, x: torch.Tensor, pixels: slice = slice(None)):
        """The function z (..., B, d) -> log p(z) + log p(x_b | z) (..., B) for images x (B, D)."""
        return lambda z: self.prior_log_prob(z) + self.log_lik(x, z, pixels)

    def sample_x(self, z: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """x ~ p(x|z) for z (B, d): binary pixels, continuous-Bernoulli pixels in [0, 1], or the mean plus per-pixel
        Gaussian noise; (B, D)."""
        if self.arch.likelihood == "continuous_bernoulli":
            return continuous_bernoulli_sample(self.decoder(z), generator)
        mean = self.decoder_mean(z)
        if self.arch.likelihood == "bernoulli":
            return bernoulli_sample(mean, generator)
        return gaussian_sample(mean, self.pixel_logvar().expand_as(mean), generator)

    # ---------------------------------------------------------------- ELBO and log p(x)
    def elbo(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One-sample ELBO per image and its two terms, each (B,): rec = log p(x|z), kl = KL(q || p)."""
        mean, logvar = self.encode(x)
        z = reparameterize(mean, logvar, eps)  # (B, d)
        if self.arch.prior == "gaussian" and self.arch.closed_form_kl:
            kl = kl_to_standard_normal(mean, logvar).sum(-1)
        else:
            kl = monte_carlo_kl(z, mean, logvar, self.prior_log_prob)
        rec = self.log_lik(x, z)
        return {"elbo": rec - kl, "rec": rec, "kl": kl}

    @torch.no_grad()
    def log_px(self, x: torch.Tensor, samples: int, generator: torch.Generator, chunk: int = 500,
               image_batch: int = 100) -> dict[str, torch.Tensor]:
        """Importance-sampled log p(x) with q(z|x) as proposal, its delta-method standard error, and the
        ``samples``-draw Monte Carlo ELBO (the mean of the same log weights), each (N,), for x (N, D)
        (Burda et al. 2015's estimator with k = ``samples``)."""
        out: dict[str, list] = {"log_p": [], "se": [], "elbo": []}
        for xb in x.split(image_batch):
            mean, logvar = self.encode(xb)
            # log w_i = log p(z_i) + log p(x|z_i) - log q(z_i|x), z_i ~ q(z|x)
            log_w = log_weights(mean, logvar, self.log_joint(xb), samples, chunk, generator)  # (M, B)
            out["log_p"].append(log_mean_exp(log_w))
            out["se"].append(log_mean_exp_se(log_w))
            out["elbo"].append(log_w.mean(0))
        return {key: torch.cat(v) for key, v in out.items()}


@torch.no_grad()
def per_image(model: MLPVAE, x: torch.Tensor, seed: int, batch_size: int = 1000) -> dict[str, torch.Tensor]:
    """ELBO, rec and kl of every image of x (N, D), each (N,), with eps fixed by ``seed`` so that epochs compare."""
    model.eval()
    eps = torch.randn(len(x), model.arch.latent_dim, generator=torch.Generator().manual_seed(seed)).to(x.device)
    parts = [model.elbo(x[i:i + batch_size], eps[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}


def evaluate(model: MLPVAE, x: torch.Tensor, seed: int) -> dict[str, float]:
    """Means of ``per_image`` over x and the standard error of the mean ELBO; nats per image."""
    terms = per_image(model, x, seed)
    return {"elbo": terms["elbo"].mean().item(), "elbo_se": (terms["elbo"].std() / math.sqrt(len(x))).item(),
            "rec": terms["rec"].mean().item(), "kl": terms["kl"].mean().item()}


@dataclass(frozen=True)
class Training:
    """How a model is trained (kept in every Config)."""

    epochs: int = 10  # passes over the training images
    batch_size: int = 128  # DTU's batch size
    lr: float = 1e-3  # Adam's step size (betas 0.9, 0.999, no weight decay: torch's defaults)
    # learning-rate multiplier of a learned pixel variance: Adam moves each parameter by about lr per step,
    # and log v must travel several units from its start, so at lr alone it barely moves in a short budget
    variance_lr_factor: float = 30.0


def fit(model: MLPVAE, x_train: torch.Tensor, x_val: torch.Tensor | None, training: Training, ctx, seed: int,
        label: str = "", patience: int | None = None) -> dict[str, list]:
    """Adam on the negative ELBO averaged over minibatches; after every epoch the ELBO of x_val (fixed eps)
    when x_val is given.

    With x_val and ``patience``, early stopping as Eindhoven's ``training()``: the weights of the epoch with the best
    validation ELBO are kept, training stops once more than ``patience`` epochs in a row have not improved on it
    (or after ``training.epochs``), and the model ends with the kept weights.

    Returns per-epoch lists: train_elbo (running mean over the epoch's batches), val (``evaluate``), epoch_s;
    with ``patience`` also best_epoch (1-based) and stopped_early.
    """
    variance = [p for name, p in model.named_parameters() if name == "pixel_raw"]
    rest = [p for name, p in model.named_parameters() if name != "pixel_raw"]
    opt = torch.optim.Adam([{"params": rest}, {"params": variance, "lr": training.lr * training.variance_lr_factor}],
                           lr=training.lr)
    generator = torch.Generator().manual_seed(seed)
    history: dict[str, list] = {"train_elbo": [], "val": [], "epoch_s": []}
    for epoch in range(1, training.epochs + 1):
        start = time.perf_counter()
        model.train()
        order = batches(len(x_train), training.batch_size, generator)
        total = 0.0
        for i, idx in enumerate(order, 1):
            eps = torch.randn(len(idx), model.arch.latent_dim, generator=generator).to(x_train.device)
            loss = -model.elbo(x_train[idx.to(x_train.device)], eps)["elbo"].mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total -= loss.item() * len(idx)
            ctx.progress.update(epoch, training.epochs, i, len(order), loss.item())
        history["train_elbo"].append(total / len(x_train))
        if x_val is not None:
            history["val"].append(evaluate(model, x_val, seed + 1))
        history["epoch_s"].append(time.perf_counter() - start)
        val = f", validation ELBO {history['val'][-1]['elbo']:.2f}" if x_val is not None else ""
        ctx.progress.note(f"{label + ' ' if label else ''}epoch {epoch}/{training.epochs}: train ELBO {history['train_elbo'][-1]:.2f}"
                          f"{val} nats ({history['epoch_s'][-1]:.1f}s)")
        if x_val is not None and patience is not None:
            if epoch == 1 or history["val"][-1]["elbo"] > best[0]:
                best = (history["val"][-1]["elbo"], epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})
            elif epoch - best[1] > patience:
                break
    if x_val is not None and patience is not None:
        model.load_state_dict(best[2])
        history.update(best_epoch=best[1], stopped_early=len(history["val"]) < training.epochs)
    return history


def checkpoint(model: MLPVAE) -> dict:
    """What ``restore`` reads: {"arch": dict, "weights": state dict}."""
    return {"arch": dataclasses.asdict(model.arch), "weights": model.state_dict()}


def restore(state: dict, device: torch.device) -> MLPVAE:
    """A model from a checkpoint's {"arch": dict, "weights": state dict}, in eval mode."""
    arch = dict(state["arch"], hidden=tuple(state["arch"]["hidden"]))
    model = MLPVAE(Arch(**arch)).to(device)
    model.load_state_dict(state["weights"])
    return model.eval()
