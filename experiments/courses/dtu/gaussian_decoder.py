"""Companion, DTU 02460 week 1 Exercise 1.7: continuous pixels with a Gaussian decoder.

Question: with pixels in [0, 1] and p(x|z) = N(x; mu(z), diag(v)), compare a fixed variance with a
learned per-pixel variance: how do samples x ~ p(x|z) look beside the decoder means mu(z)?

Method: two ``mlp_vae.MLPVAE`` models with the Gaussian prior, identical but for the likelihood:
v = sigma^2 fixed (sigma = 0.1), or v_j learned per pixel (one free parameter each, shared by all
z, floored at sigma_min^2 because background pixels are exactly 0 and v_j -> 0 would send the
likelihood to infinity). Both train on the same images with the same budget and seed. For ten prior
draws z, the decoder means and one sample x ~ p(x|z) of each model; the learned standard deviation
per pixel as an image. Sample quality measured, not only looked at: the Frechet distance and the
precision/recall of ``sample_metrics`` on the supervised CNN's features, for decoder means and for
samples (clipped to [0, 1]), against real test digits, with another set of real test digits as the
reference a perfect generator would match.

Rerun: ``python reproduce.py --only dtu_gauss`` (needs sup)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from experiments.lib import mlp_vae, sample_metrics
from experiments.lib.contract import Context, DigitGrid, Result
from experiments.lib.data import to_float
from experiments.lib.plotting import new_figure

SECTION = "dtu_gauss"
TITLE = "DTU 02460: Gaussian decoder with fixed and learned variance"
REQUIRES = ("sup",)
LIKELIHOODS = ("gaussian_fixed", "gaussian_learned")
LABELS = {"gaussian_fixed": "fixed variance", "gaussian_learned": "learned variance"}


@dataclass(frozen=True)
class Config:
    latent_dim: int = 10  # M, as dtu_vae
    hidden: tuple[int, ...] = (200, 200)  # as dtu_vae
    sigma: float = 0.1  # the fixed pixel standard deviation, and the learned one's starting value
    sigma_min: float = 0.01  # floor of the learned standard deviation
    train_images: int = 10000  # the first images of the training file
    training: mlp_vae.Training = field(default_factory=lambda: mlp_vae.Training(epochs=8))
    metric_images: int = 1000  # prior samples judged, and real test digits in each real set
    knn: int = 3  # k of the precision/recall radii
    stream: int = 21  # images and prior draws use generators seeded from seed + stream


SMOKE = Config(train_images=500, training=mlp_vae.Training(epochs=1), metric_images=100)

HEADLINE = ("test.gaussian_learned.elbo", "test ELBO, learned variance (nats)")
TOLERANCES = {"test.gaussian_fixed.elbo": (1e-3, 5.0), "test.gaussian_learned.elbo": (1e-3, 20.0)}


def sigma_figure(sigma: np.ndarray, floor: float):
    """The learned per-pixel standard deviation as a 28 x 28 image (log colour scale)."""
    import matplotlib.colors as colors

    fig, axes = new_figure(1, width_in=2.6, height_in=2.2)
    image = axes[0].imshow(sigma.reshape(28, 28), cmap="viridis", norm=colors.LogNorm(vmin=floor, vmax=sigma.max()))
    axes[0].set_xticks([])
    axes[0].set_yticks([])
    fig.colorbar(image, ax=axes[0], fraction=0.046).set_label("learned standard deviation")
    return fig


def run(cfg: Config, ctx: Context) -> Result:
    classifier = sample_metrics.load_classifier(ctx.require("sup"), ctx.device)
    x_train = to_float(ctx.data.full_train.x[:cfg.train_images], 0.0, 1.0).flatten(1).to(ctx.device)  # (N, 784)
    x_test = to_float(ctx.data.test.x, 0.0, 1.0).flatten(1).to(ctx.device)
    pick = torch.Generator().manual_seed(ctx.seed + cfg.stream)
    order = torch.randperm(len(x_test), generator=pick)
    n = cfg.metric_images
    as_images = lambda x: x.clamp(0, 1).view(-1, 1, 28, 28)  # noqa: E731
    reference = sample_metrics.cnn_features(classifier, as_images(x_test[order[:n]]))
    held_out = sample_metrics.cnn_features(classifier, as_images(x_test[order[n:2 * n]]))
    test, scores, rows, row_labels, histories = {}, {"real test digits": sample_metrics.score(reference, held_out, cfg.knn)}, [], [], {}
    learned = None
    for name in LIKELIHOODS:
        arch = mlp_vae.Arch(latent_dim=cfg.latent_dim, hidden=cfg.hidden, likelihood=name, sigma=cfg.sigma,
                            sigma_min=cfg.sigma_min)
        model = mlp_vae.MLPVAE(arch).to(ctx.device)
        histories[name] = mlp_vae.fit(model, x_train, None, cfg.training, ctx, ctx.seed, label=name)
        model.eval()
        test[name] = mlp_vae.evaluate(model, x_test, ctx.seed + 1)
        draws = torch.Generator().manual_seed(ctx.seed + cfg.stream + 1)
        with torch.no_grad():
            z = model.sample_prior(n, draws)  # (n, d)
            means, samples = model.decoder_mean(z), model.sample_x(z, draws)  # (n, D) each
        for kind, x in (("means", means), ("samples", samples)):
            scores[f"{LABELS[name]}: {kind}"] = sample_metrics.score(
                reference, sample_metrics.cnn_features(classifier, as_images(x)), cfg.knn)
        rows += [means[:10], samples[:10].clamp(0, 1)]
        row_labels += [f"{LABELS[name]}: mean", f"{LABELS[name]}: sample"]
        if name == "gaussian_learned":
            learned = model.pixel_logvar().detach().mul(0.5).exp().cpu()  # (D,) sigma_j
    ink = x_train.mean(0).cpu()  # (D,) average intensity of each pixel
    metrics = {
        "test": test, "scores": scores, "train_elbo": {name: h["train_elbo"] for name, h in histories.items()},
        "timing": {"train_s": {name: sum(h["epoch_s"]) for name, h in histories.items()}},
        "learned_sigma": {"median": learned.median().item(), "min": learned.min().item(), "max": learned.max().item(),
                          "floor_share": (learned < 1.05 * cfg.sigma_min).double().mean().item(),
                          # pixels that are ink in at least a tenth of the images on average, and the rest
                          "median_ink": learned[ink > 0.1].median().item(),
                          "median_background": learned[ink <= 0.1].median().item()},
        "fd_samples_over_means": {name: scores[f"{LABELS[name]}: samples"]["fd"] / scores[f"{LABELS[name]}: means"]["fd"]
                                  for name in LIKELIHOODS},
        "sigma": cfg.sigma, "sigma_min": cfg.sigma_min, "train_images": len(x_train), "epochs": cfg.training.epochs,
        "metric_images": n, "knn": cfg.knn, "latent_dim": cfg.latent_dim,
    }
    grid = DigitGrid(torch.stack(rows).view(len(rows), 10, 28, 28).cpu().numpy(), tuple(row_labels))
    return Result(metrics, {"samples": grid, "sigma": sigma_figure(learned.numpy(), cfg.sigma_min)})
