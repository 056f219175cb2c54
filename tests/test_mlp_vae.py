"""The companion's MLP VAE and the DTU/Eindhoven sections' helpers, against exact answers."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from experiments.courses.dtu import priors as dtu_vae

from experiments.courses.eindhoven import mixture_vae as ein_vae

from experiments.lib import mlp_vae


@pytest.fixture
def g():
    return torch.Generator().manual_seed(0)


def grid_log_px(model: mlp_vae.MLPVAE, x: torch.Tensor) -> torch.Tensor:
    """log p(x) = log of the integral of p(z) p(x|z) over a fine 1-D grid of z (trapezoid rule), (B,)."""
    z = torch.linspace(-10, 10, 8001, dtype=torch.float64).unsqueeze(1)  # (G, 1)
    with torch.no_grad():
        log_joint = model.prior_log_prob(z).unsqueeze(1) + model.log_lik(x, z.unsqueeze(1))  # (G, B)
    step = (z[1] - z[0]).item()
    return torch.logsumexp(log_joint, 0) + math.log(step)


@pytest.mark.parametrize("prior, likelihood", [("gaussian", "bernoulli"), ("mog", "bernoulli"), ("gaussian", "continuous_bernoulli")])
def test_importance_sampled_log_px_matches_numerical_integration(g, prior, likelihood):
    """With a 1-D latent, log p(x) by importance sampling equals the grid integral within 4 standard errors."""
    torch.manual_seed(1)
    arch = mlp_vae.Arch(latent_dim=1, hidden=(8,), prior=prior, components=3, likelihood=likelihood)
    model = mlp_vae.MLPVAE(arch).double().eval()
    x = torch.rand(3, 784, generator=g, dtype=torch.float64)
    x = x if likelihood == "continuous_bernoulli" else (x < 0.3).double()
    est = model.log_px(x, 5000, g, chunk=5000)
    exact = grid_log_px(model, x)
    assert torch.all((est["log_p"] - exact).abs() < 4 * est["se"] + 1e-6), (est, exact)


def test_elbo_is_below_log_px(g):
    """The mean one-sample ELBO over many draws lies below the exact log p(x) (Jensen)."""
    torch.manual_seed(2)
    model = mlp_vae.MLPVAE(mlp_vae.Arch(latent_dim=1, hidden=(8,), prior="mog", components=2)).double().eval()
    x = (torch.rand(2, 784, generator=g, dtype=torch.float64) < 0.3).double()
    with torch.no_grad():
        elbo = model.elbo(x.repeat(1000, 1))["elbo"].view(1000, 2).mean(0)  # 1000 draws per image
    assert torch.all(elbo < grid_log_px(model, x))


def test_monte_carlo_kl_elbo_is_unbiased_for_the_closed_form_one(g):
    """Without the closed-form KL (Toronto's ELBO) the mean over many draws equals the closed-form ELBO within 4 SE."""
    torch.manual_seed(3)
    arch = mlp_vae.Arch(latent_dim=2, hidden=(8,), activation="tanh")
    closed = mlp_vae.MLPVAE(arch).double().eval()
    mc = mlp_vae.MLPVAE(dataclasses.replace(arch, closed_form_kl=False)).double().eval()
    mc.load_state_dict(closed.state_dict())
    x = (torch.rand(1, 784, generator=g, dtype=torch.float64) < 0.3).double().repeat(20000, 1)
    eps = torch.randn(20000, 2, generator=g, dtype=torch.float64)
    with torch.no_grad():
        a, b = closed.elbo(x, eps)["elbo"], mc.elbo(x, eps)["elbo"]
    assert (a.mean() - b.mean()).abs() < 4 * (a - b).std() / math.sqrt(len(a))


def test_log_lik_of_two_halves_adds_up(g):
    """log p(x|z) of the top half plus that of the bottom half is log p(x|z) of all pixels."""
    model = mlp_vae.MLPVAE(mlp_vae.Arch(latent_dim=2, hidden=(8,))).double()
    x = (torch.rand(3, 784, generator=g, dtype=torch.float64) < 0.3).double()
    z = torch.randn(5, 3, 2, generator=g, dtype=torch.float64)
    with torch.no_grad():
        halves = model.log_lik(x, z, slice(0, 392)) + model.log_lik(x, z, slice(392, None))
        torch.testing.assert_close(halves, model.log_lik(x, z))


def test_learned_pixel_variance_starts_at_sigma_and_stays_above_its_floor():
    """v = sigma_min^2 + softplus(raw) starts at sigma^2 and never falls below sigma_min^2."""
    model = mlp_vae.MLPVAE(mlp_vae.Arch(likelihood="gaussian_learned", sigma=0.1, sigma_min=0.01))
    torch.testing.assert_close(model.pixel_logvar(), torch.full((784,), 2 * math.log(0.1)))
    with torch.no_grad():
        model.pixel_raw.fill_(-1e4)
    torch.testing.assert_close(model.pixel_logvar(), torch.full((784,), 2 * math.log(0.01)))


def test_clustering_matches_brute_force(g):
    """k-NN accuracy and silhouette equal a direct per-point computation."""
    z = torch.randn(60, 3, generator=g, dtype=torch.float64)
    labels = torch.arange(60) % 10
    got = dtu_vae.clustering(z, labels, 3)
    dist = torch.cdist(z, z)
    hits, sil = 0, []
    for i in range(60):
        others = [j for j in range(60) if j != i]
        near = sorted(others, key=lambda j: dist[i, j].item())[:3]
        hits += int(torch.bincount(labels[near], minlength=10).argmax() == labels[i])
        a = dist[i, [j for j in others if labels[j] == labels[i]]].mean()
        b = min(dist[i, labels == c].mean() for c in range(10) if c != labels[i])
        sil.append(((b - a) / max(a, b)).item())
    assert got["knn_accuracy"] == pytest.approx(hits / 60)
    assert got["silhouette"] == pytest.approx(sum(sil) / 60)


def test_stability_flags_a_drop_beyond_the_tolerance():
    """A curve that falls by 2 nats once is unstable at tolerance 0.5; its best epoch and shortfall are exact."""
    s = ein_vae.stability([-120.0, -110.0, -112.0, -109.0], 0.5)
    assert (s["stable"], s["largest_drop"], s["best_epoch"], s["last_below_best"]) == (False, 2.0, 4, 0.0)
    assert ein_vae.stability([-120.0, -110.0, -109.8], 0.5)["stable"]


def test_early_stopping_stops_after_patience_epochs_without_improvement_and_keeps_the_best():
    """At lr 0 the validation ELBO never improves: with patience 1, training stops at epoch 3 of 5 on epoch 1's weights."""
    import io
    from experiments.lib.contract import Context
    from experiments.lib.runtime import Progress
    ctx = Context(data=None, device=torch.device("cpu"), seed=0, progress=Progress("t", io.StringIO()), require=None)
    model = mlp_vae.MLPVAE(mlp_vae.Arch(latent_dim=2, hidden=(8,)))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    x = (torch.rand(40, mlp_vae.PIXELS, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    h = mlp_vae.fit(model, x, x[:10], mlp_vae.Training(epochs=5, batch_size=20, lr=0.0), ctx, 0, patience=1)
    assert (len(h["val"]), h["best_epoch"], h["stopped_early"]) == (3, 1, True)
    assert all(torch.equal(v, start[k]) for k, v in model.state_dict().items())


def test_conv_vae_log_px_matches_numerical_integration(g):
    """DTU 1.8's CNN VAE, with a 1-D latent: importance-sampled log p(x) equals the grid integral within 4 standard errors."""
    from experiments.courses.dtu.conv_vae import ConvVAE

    torch.manual_seed(2)
    model = ConvVAE(mlp_vae.Arch(latent_dim=1), channels=(2, 3), kernel=4).double().eval()
    x = (torch.rand(3, 784, generator=g, dtype=torch.float64) < 0.3).double()
    est = model.log_px(x, 5000, g, chunk=5000)
    assert torch.all((est["log_p"] - grid_log_px(model, x)).abs() < 4 * est["se"] + 1e-6)


def test_conv_decoder_maps_leading_dimensions_like_each_slice(g):
    """The CNN decoder of z (S, B, M) equals its output on each (B, M) slice, shaped (S, B, 784)."""
    from experiments.courses.dtu.conv_vae import ConvVAE

    model = ConvVAE(mlp_vae.Arch(latent_dim=3), channels=(2, 3), kernel=4).double().eval()
    z = torch.randn(4, 5, 3, generator=g, dtype=torch.float64)
    out = model.decoder(z)
    assert out.shape == (4, 5, 784)
    torch.testing.assert_close(out, torch.stack([model.decoder(zs) for zs in z]))


def test_tolerance_rules_name_every_learning_rate_of_ein_vae():
    """pipeline.tolerance's NOISE rules for ein_vae's per-rate best epoch name each of its Config's learning rates."""
    from pipeline.tolerance import NOISE

    assert {f"lrs.{lr:g}.best_epoch" for lr in ein_vae.Config().lrs} <= set(NOISE["ein_vae"])
