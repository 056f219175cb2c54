"""Companion, DTU 02460 week 1 Exercise 1.7: continuous pixels with a Gaussian decoder, and the continuous Bernoulli.

Question: with pixels in [0, 1] and p(x|z) = N(x; mu(z), diag(v)), compare a fixed variance with a
learned per-pixel variance: how is the qualitative sample quality, and do the decoder means mu(z) of prior
draws z ~ p(z) look better than samples x ~ p(x|z)? The course's optional part: the same with the continuous
Bernoulli p(x|z) = prod_j CB(x_j; sigmoid(f_j(z))) (Loaiza-Ganem and Cunningham 2019).

Method: two ``mlp_vae.MLPVAE`` models with the Gaussian prior, identical but for the likelihood:
v = sigma^2 fixed (sigma = 0.1), or v_j learned per pixel (one free parameter each, shared by all
z, floored at sigma_min^2 because background pixels are exactly 0 and v_j -> 0 would send the
likelihood to infinity), and a third with the continuous Bernoulli, whose mean E[x|z] is not its parameter
sigmoid(f(z)) (``prob.continuous_bernoulli_mean``). All three train on all training images for the course's 5 epochs in batches of 128, with
the same seed. For ten prior draws z, the decoder means and one sample x ~ p(x|z) of each model; the learned
standard deviation per pixel as an image. Whether a sample measure can judge these images is checked on the
data they are: continuous real test digits, against the known-bad sets of ``sample_metrics`` and the same digits
with each model's pixel noise added (``sample_metrics.validate_each``); and whether it can decide means against
samples, by asking it to rank real digits, and blurred real digits (as far from the data as the means are),
above the same images with each model's noise added. A measure that fails is not used to answer the question.

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
TITLE = "DTU 02460: Gaussian decoders with fixed and learned variance, and the continuous Bernoulli"
REQUIRES = ("sup",)
LIKELIHOODS = ("gaussian_fixed", "gaussian_learned", "continuous_bernoulli")
GAUSSIANS = ("gaussian_fixed", "gaussian_learned")  # the likelihoods whose pixel noise is N(0, diag v), v free of z
LABELS = {"gaussian_fixed": "fixed variance", "gaussian_learned": "learned variance", "continuous_bernoulli": "continuous Bernoulli"}


@dataclass(frozen=True)
class Config:
    latent_dim: int = 10  # M, as dtu_vae
    hidden: tuple[int, ...] = (200, 200)  # as dtu_vae
    sigma: float = 0.1  # the fixed pixel standard deviation, and the learned one's starting value
    sigma_min: float = 0.01  # floor of the learned standard deviation
    train_images: int | None = None  # the first images of the training file; None: all of them (the course's)
    training: mlp_vae.Training = field(default_factory=lambda: mlp_vae.Training(epochs=5))  # the course's command
    metric_images: int = 1000  # prior samples judged, and real test digits in each real set
    knn: int = 3  # k of the precision/recall radii
    stream: int = 21  # images and prior draws use generators seeded from seed + stream


SMOKE = Config(train_images=500, training=mlp_vae.Training(epochs=1), metric_images=100)
MEASURES = ("fd", "precision", "recall")

HEADLINE = ("test.gaussian_learned.elbo", "test ELBO, learned variance (nats)")
TOLERANCES = {"test.gaussian_fixed.elbo": (1e-3, 5.0), "test.gaussian_learned.elbo": (1e-3, 20.0),
              "test.continuous_bernoulli.elbo": (1e-3, 20.0)}


def sigma_figure(sigma: np.ndarray, floor: float):
    """The learned per-pixel standard deviation as a 28 x 28 image (log colour scale)."""
    import matplotlib.colors as colors

    fig, axes = new_figure(1, width_in=2.6, height_in=2.2)
    image = axes[0].imshow(sigma.reshape(28, 28), cmap="viridis", norm=colors.LogNorm(vmin=floor, vmax=sigma.max()))
    axes[0].set_xticks([])
    axes[0].set_yticks([])
    fig.colorbar(image, ax=axes[0], fraction=0.046).set_label("learned standard deviation")
    return fig


def noisy(images01: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Images (N, 1, 28, 28) plus a model's pixel noise N(0, diag exp(logvar)) (logvar (D,)), clipped to [0, 1]."""
    noise = torch.randn(images01.shape, generator=generator).to(images01.device) * logvar.mul(0.5).exp().view(1, 1, 28, 28)
    return (images01 + noise).clamp(0, 1)


def deciders(scores: dict, labels: list[str]) -> dict[str, bool]:
    """Per measure: does it rank real digits above the same digits with each model's noise, and blurred digits above
    blurred digits with that noise? Only then can it say whether adding the noise (sample against mean) is worse."""
    sign = sample_metrics.BETTER
    pairs = [(clean, f"{clean} + {label} noise") for clean in (sample_metrics.REAL, "blurred") for label in labels]
    return {m: all(sign[m] * (scores[a][m] - scores[b][m]) > 0 for a, b in pairs) for m in MEASURES}


def run(cfg: Config, ctx: Context) -> Result:
    classifier = sample_metrics.load_classifier(ctx.require("sup"), ctx.device)
    x_train = to_float(ctx.data.full_train.x[:cfg.train_images], 0.0, 1.0).flatten(1).to(ctx.device)  # (N, 784)
    x_test = to_float(ctx.data.test.x, 0.0, 1.0).flatten(1).to(ctx.device)
    pick = torch.Generator().manual_seed(ctx.seed + cfg.stream)
    order = torch.randperm(len(x_test), generator=pick)
    n = cfg.metric_images
    as_images = lambda x: x.clamp(0, 1).view(-1, 1, 28, 28)  # noqa: E731
    reference = sample_metrics.cnn_features(classifier, as_images(x_test[order[:n]]))
    held_out = as_images(x_test[order[n:2 * n]])
    test, scores, rows, row_labels, histories, logvars, means_of, samples_of = {}, {}, [], [], {}, {}, {}, {}
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
            if name in GAUSSIANS:
                logvars[LABELS[name]] = model.pixel_logvar().detach()  # (D,)
        means_of[name], samples_of[name] = means, samples
        for kind, x in (("means", means), ("samples", samples)):
            scores[f"{LABELS[name]}: {kind}"] = sample_metrics.score(
                reference, sample_metrics.cnn_features(classifier, as_images(x)), cfg.knn)
        rows += [means[:10], samples[:10].clamp(0, 1)]
        row_labels += [f"{LABELS[name]}: mean", f"{LABELS[name]}: sample"]
        if name == "gaussian_learned":
            learned = logvars[LABELS[name]].mul(0.5).exp().cpu()  # (D,) sigma_j
    # the measures checked on continuous digits: known-bad sets, and real and blurred digits with each model's noise
    bad_gen = torch.Generator().manual_seed(ctx.seed + cfg.stream + 2)
    blurred = sample_metrics.known_bad(held_out, torch.Generator().manual_seed(ctx.seed + cfg.stream + 3))["blurred"]
    extra = {f"{clean} + {label} noise": noisy(images, logvar, bad_gen)
             for clean, images in ((sample_metrics.REAL, held_out), ("blurred", blurred)) for label, logvar in logvars.items()}
    validation = sample_metrics.validate_each(reference, held_out, classifier, bad_gen, cfg.knn, extra)
    ink = x_train.mean(0).cpu()  # (D,) average intensity of each pixel
    metrics = {
        "test": test, "scores": scores, "train_elbo": {name: h["train_elbo"] for name, h in histories.items()},
        "timing": {"train_s": {name: sum(h["epoch_s"]) for name, h in histories.items()}},
        "learned_sigma": {"median": learned.median().item(), "min": learned.min().item(), "max": learned.max().item(),
                          "floor_share": (learned < 1.05 * cfg.sigma_min).double().mean().item(),
                          # pixels that are ink in at least a tenth of the images on average, and the rest
                          "median_ink": learned[ink > 0.1].median().item(),
                          "median_background": learned[ink <= 0.1].median().item()},
        # the root-mean-square pixel noise a sample adds to its mean, in grey levels of the 8-bit images
        "noise_grey_levels": {LABELS[name]: 255 * logvars[LABELS[name]].exp().mean().sqrt().item() for name in GAUSSIANS},
        # the same for the continuous Bernoulli, whose noise depends on z: measured, root-mean-square of sample - mean
        "cb_noise_grey_levels": 255 * (samples_of["continuous_bernoulli"] - means_of["continuous_bernoulli"]).pow(2).mean().sqrt().item(),
        "validation": validation, "decides": deciders(validation["scores"], list(logvars)),
        "fd_samples_over_means": {name: scores[f"{LABELS[name]}: samples"]["fd"] / scores[f"{LABELS[name]}: means"]["fd"]
                                  for name in LIKELIHOODS},
        "sigma": cfg.sigma, "sigma_min": cfg.sigma_min, "train_images": len(x_train), "epochs": cfg.training.epochs,
        "batch_size": cfg.training.batch_size, "metric_images": n, "knn": cfg.knn, "latent_dim": cfg.latent_dim,
    }
    grid = DigitGrid(torch.stack(rows).view(len(rows), 10, 28, 28).cpu().numpy(), tuple(row_labels))
    return Result(metrics, {"samples": grid, "sigma": sigma_figure(learned.numpy(), cfg.sigma_min)})
