"""Companion, DTU 02460 week 1 Exercise 1.8 (optional): a CNN encoder and decoder; and the course's network width.

Question: extend the Bernoulli VAE to a CNN-based encoder and decoder. When sampling from the trained model, is
the sample quality qualitatively better? Is the test-set ELBO better? And, for every DTU answer: what does our
narrower MLP (hidden layers of 200, dtu_vae's) change against the course code's 512-unit layers?

Method: ``ConvVAE``, the Gaussian-prior Bernoulli ``mlp_vae.MLPVAE`` of dtu_vae with its two fully connected
networks replaced by convolutions (encoder: two stride-2 4x4 convolutions, 28 -> 14 -> 7, then a linear layer to
the 2M outputs of q(z|x); decoder: the mirror image, a linear layer to 7x7 feature maps and two stride-2 transposed
convolutions back to 28x28 logits), trained exactly as dtu_vae's Gaussian-prior MLP (binarized MNIST, all training
images, the course's 5 epochs in batches of 128, Adam, the same seed and the same batches). Compared with that
MLP itself (dtu_vae's checkpoint): the test ELBO of both on every test image with the same noise, and its paired
difference; ten prior draws z, the same for both, decoded to means and binary samples; and the Frechet distance
and k-NN precision and recall (``sample_metrics``, on the supervised CNN's features) of each model's binary
samples against real binarized test digits, each kept only if it passes its own check on binarized digits (the
known-bad sets and digits with flipped pixels). The width: the same MLP with the course code's hidden layers
(``wide``), trained by the same command, seed and batches, its test ELBO paired with dtu_vae's MLP's.

Rerun: ``python reproduce.py --only dtu_conv`` (needs sup and dtu_vae)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from experiments.courses.dtu.priors import paired, summary
from experiments.lib import mlp_vae, sample_metrics
from experiments.lib.contract import Context, DigitGrid, Result
from experiments.lib.data import binarize

SECTION = "dtu_conv"
TITLE = "DTU 02460: a CNN encoder and decoder (Exercise 1.8), and the course's network width"
REQUIRES = ("sup", "dtu_vae")
MODELS = ("mlp", "cnn")  # the models whose samples are shown and judged
LABELS = {"mlp": "MLP (dtu_vae)", "cnn": "CNN"}
SIDE = 28  # image side; each stride-2 layer halves it: 28 -> 14 -> 7


@dataclass(frozen=True)
class Config:
    channels: tuple[int, int] = (16, 32)  # feature maps after the first and second convolution (the decoder mirrors)
    kernel: int = 4  # side of every (transposed) convolution's kernel, stride 2, padding 1
    wide: tuple[int, ...] = (512, 512)  # the course code's hidden widths (vae_bernoulli.py), against dtu_vae's 200
    # the course's command, as dtu_vae (its latent size M, prior and training are read from its checkpoint and config)
    training: mlp_vae.Training = field(default_factory=lambda: mlp_vae.Training(epochs=5))
    metric_images: int = 1000  # prior samples judged per model, and real test digits in each real set
    knn: int = 3  # k of the precision/recall radii
    flip_rate: float = 0.05  # share of pixels flipped in the known-bad set of binary digits with flipped pixels
    shown: int = 10  # prior draws shown per model
    stream: int = 51  # images and prior draws use generators seeded from seed + stream


SMOKE = Config(channels=(4, 8), wide=(16, 16), training=mlp_vae.Training(epochs=1), metric_images=100)

HEADLINE = ("test.cnn.elbo", "test ELBO, CNN (nats)")
TOLERANCES = {"test.cnn.elbo": (1e-3, 3.0), "test.mlp.elbo": (1e-3, 3.0), "test.wide.elbo": (1e-3, 3.0),
              "cnn_minus_mlp.difference": (1e-3, 3.0), "wide_minus_mlp.difference": (1e-3, 3.0)}


class ConvDecoder(nn.Sequential):
    """z (..., M) -> logits (..., D): the layers act on (N, M) with N the product of the leading dimensions
    (importance sampling decodes (samples, B, M) at once), reshaped back after."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return super().forward(z.reshape(-1, z.shape[-1])).reshape(*z.shape[:-1], -1)


class ConvVAE(mlp_vae.MLPVAE):
    """``MLPVAE`` (its prior, likelihood, ELBO, importance sampling and training) with convolutional networks:
    encoder x (B, D) -> (B, 1, 28, 28) -> (B, c1, 14, 14) -> (B, c2, 7, 7) -> (B, 2M); decoder the reverse."""

    def __init__(self, arch: mlp_vae.Arch, channels: tuple[int, int], kernel: int):
        super().__init__(arch)
        c1, c2 = channels
        act = mlp_vae.ACTIVATIONS[arch.activation]
        flat = c2 * (SIDE // 4) ** 2
        self.encoder = nn.Sequential(
            nn.Unflatten(1, (1, SIDE, SIDE)),
            nn.Conv2d(1, c1, kernel, stride=2, padding=1), act(),  # (B, c1, 14, 14)
            nn.Conv2d(c1, c2, kernel, stride=2, padding=1), act(),  # (B, c2, 7, 7)
            nn.Flatten(1), nn.Linear(flat, 2 * arch.latent_dim))
        self.decoder = ConvDecoder(
            nn.Linear(arch.latent_dim, flat), act(), nn.Unflatten(1, (c2, SIDE // 4, SIDE // 4)),
            nn.ConvTranspose2d(c2, c1, kernel, stride=2, padding=1), act(),  # (N, c1, 14, 14)
            nn.ConvTranspose2d(c1, 1, kernel, stride=2, padding=1),  # (N, 1, 28, 28) logits
            nn.Flatten(1))


def run(cfg: Config, ctx: Context) -> Result:
    classifier = sample_metrics.load_classifier(ctx.require("sup"), ctx.device)
    models = {"mlp": mlp_vae.restore(ctx.require("dtu_vae")["gaussian"], ctx.device)}
    arch = models["mlp"].arch  # dtu_vae's Gaussian prior, Bernoulli likelihood and latent size M
    x_train = binarize(ctx.data.full_train.x).flatten(1).to(ctx.device)  # (N, 784) in {0, 1}, as dtu_vae
    x_test = binarize(ctx.data.test.x).flatten(1).to(ctx.device)
    models["cnn"] = ConvVAE(arch, cfg.channels, cfg.kernel).to(ctx.device)
    models["wide"] = mlp_vae.MLPVAE(dataclasses.replace(arch, hidden=cfg.wide)).to(ctx.device)
    histories = {name: mlp_vae.fit(models[name], x_train, None, cfg.training, ctx, ctx.seed, label=name)
                 for name in ("cnn", "wide")}  # the same batches and noise as dtu_vae's MLP
    for model in models.values():
        model.eval()
    # the real digits the samples are judged against, and the check of each measure on binarized digits
    n = cfg.metric_images
    as_images = lambda x: x.view(-1, 1, SIDE, SIDE)  # noqa: E731
    reference, validation = sample_metrics.validate_binary(classifier, x_test, n, cfg.knn, cfg.flip_rate,
                                                           ctx.seed + cfg.stream)
    terms = {name: mlp_vae.per_image(model, x_test, ctx.seed + 1) for name, model in models.items()}  # the same eps
    test = {name: summary(t) for name, t in terms.items()}
    per_image = {name: t["elbo"] for name, t in terms.items()}
    scores, rows, row_labels = {}, [], []
    for name in MODELS:
        draws = torch.Generator().manual_seed(ctx.seed + cfg.stream + 2)
        with torch.no_grad():
            z = models[name].sample_prior(n, draws)  # (n, M), the same draws for both models
            means, samples = models[name].decoder_mean(z), models[name].sample_x(z, draws)  # (n, D) each
        scores[name] = sample_metrics.score(reference, sample_metrics.cnn_features(classifier, as_images(samples)), cfg.knn)
        rows += [means[:cfg.shown], samples[:cfg.shown]]
        row_labels += [f"{LABELS[name]}: mean", f"{LABELS[name]}: sample"]
    metrics = {
        "test": test, "cnn_minus_mlp": paired(per_image["cnn"], per_image["mlp"]),
        "wide_minus_mlp": paired(per_image["wide"], per_image["mlp"]), "scores": scores,
        "validation": validation, "train_elbo": {name: h["train_elbo"] for name, h in histories.items()},
        "parameters": {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()},
        "channels": list(cfg.channels), "kernel": cfg.kernel, "latent_dim": arch.latent_dim,
        "hidden": {"mlp": list(arch.hidden), "wide": list(cfg.wide)},
        "epochs": cfg.training.epochs, "batch_size": cfg.training.batch_size, "lr": cfg.training.lr,
        "metric_images": n, "knn": cfg.knn, "flip_rate": cfg.flip_rate,
        "timing": {"train_s": {name: sum(h["epoch_s"]) for name, h in histories.items()}},
    }
    grid = DigitGrid(torch.stack(rows).view(len(rows), cfg.shown, SIDE, SIDE).cpu().numpy(), tuple(row_labels))
    return Result(metrics, {"samples": grid})
