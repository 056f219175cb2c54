"""Companion, Stanford STATS305C assignment 6, Problems 3 and 4: amortized variational inference with a 2-D MLP VAE.

Questions: train the course's VAE on the 60,000 binarized training images; samples; the encoder
means coloured by digit (which classes overlap, which stand apart, and why); interpolations between
8 pairs of prior draws; and short answers (why amortize, one way to improve the VAE, why a Bernoulli
latent breaks the reparameterisation gradient) that the companion's template writes from this
section's, tor_posterior's, tor_grad's and the report's numbers.

Method: the course's architecture (encoder 784-512-256, decoder 2-256-512-784, ReLU, 2-D latent,
Bernoulli pixels binarized at 0.5, closed-form KL), Adam, on all 60,000 training images; far fewer
epochs than the course's 20 (``epochs``), so that the companion keeps within its share of the
pipeline's time on a 2-core CPU (the course reports about 10 minutes for 20 epochs). Overlap of
digits in the latent plane: a k-nearest-neighbour classifier of the test images' encoder means
against training means; its confusion between each pair of digits is set beside how alike the two
digits' mean images are in pixel space (cosine similarity), with a rank correlation over the 45 pairs.

Rerun: ``python reproduce.py --only stan_vae``
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from experiments.lib import latent2d
from experiments.lib.contract import Context, DigitGrid, Result
from experiments.lib.data import binarize

SECTION = "stan_vae"
TITLE = "Stanford STATS305C: amortized inference with a 2-D MLP VAE"
REQUIRES: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    latent_dim: int = 2  # d (the course: 2)
    hidden: tuple[int, ...] = (512, 256)  # the course's encoder 784-512-256; the decoder mirrors it, 2-256-512-784
    activation: str = "relu"  # hidden nonlinearity
    closed_form_kl: bool = True  # the course uses the closed-form KL
    batch_size: int = 128  # images per Adam step
    epochs: int = 5  # passes over the 60,000 images (the course: 20; see the header)
    lr: float = 1e-3  # Adam learning rate
    eval_samples: int = 10  # draws of q per image for the final ELBOs
    n_train_eval: int = 10000  # training images (the first ones) whose ELBO is reported
    samples: tuple[int, int] = (4, 10)  # rows and columns of the prior-sample grid
    pairs: int = 8  # interpolations between pairs of prior draws (the course: 8)
    steps: int = 10  # images along each interpolation
    knn: int = 15  # neighbours of the latent-space classifier
    knn_reference: int = 10000  # training images (the first ones) it compares against
    stream: int = 40  # generators seeded with seed + stream + k


SMOKE = Config(epochs=1, eval_samples=2, n_train_eval=500, knn_reference=500, samples=(2, 5), pairs=2, steps=5)

HEADLINE = ("test_elbo", "test ELBO (nats)")
TOLERANCES = {"test_elbo": (1e-4, 3.0), "train_elbo": (1e-4, 3.0)}


def ranks(v: torch.Tensor) -> torch.Tensor:
    """Ranks 0..n-1 of the values (ties broken by position), for a Spearman correlation."""
    r = torch.empty(len(v))
    r[v.argsort()] = torch.arange(len(v), dtype=torch.float32)
    return r


def overlap(z_test: torch.Tensor, y_test: torch.Tensor, z_ref: torch.Tensor, y_ref: torch.Tensor, x_ref: torch.Tensor,
            k: int) -> dict:
    """Which digits overlap in the latent plane (k-NN confusion) and whether they look alike (pixel cosine)."""
    nearest = torch.cdist(z_test, z_ref).topk(k, largest=False).indices  # (N, k)
    votes = torch.nn.functional.one_hot(y_ref[nearest], 10).sum(1)  # (N, 10)
    pred = votes.argmax(1)
    confusion = torch.zeros(10, 10)
    confusion.index_put_((y_test, pred), torch.ones(len(y_test)), accumulate=True)
    rate = confusion / confusion.sum(1, keepdim=True).clamp(min=1)  # row-normalised
    means = torch.stack([x_ref[y_ref == d].mean(0) for d in range(10)])  # (10, 784) class-mean images
    cosine = torch.nn.functional.normalize(means, dim=1) @ torch.nn.functional.normalize(means, dim=1).T
    i, j = torch.triu_indices(10, 10, 1)
    pair_conf = rate[i, j] + rate[j, i]  # (45,) confusion either way
    pair_cos = cosine[i, j]
    order = pair_conf.argsort(descending=True)
    rc, rs = ranks(pair_conf), ranks(pair_cos)
    spearman = torch.corrcoef(torch.stack([rc, rs]))[0, 1].item()
    top = [{"pair": [int(i[o]), int(j[o])], "confusion": pair_conf[o].item(), "cosine": pair_cos[o].item(),
            "cosine_rank": int(45 - rs[o].item())} for o in order[:3]]
    return {"accuracy": (pred == y_test).float().mean().item(), "per_digit_accuracy": rate.diag().tolist(),
            "apart": int(rate.diag().argmax()), "most_overlapping": int(rate.diag().argmin()),
            "top_pairs": top, "spearman": spearman, "cosine_mean": pair_cos.mean().item()}


def run(cfg: Config, ctx: Context) -> Result:
    full = ctx.data.full_train
    x_train = binarize(full.x).flatten(1).to(ctx.device)
    x_test, y_test = binarize(ctx.data.test.x).flatten(1).to(ctx.device), ctx.data.test.y
    model, history, epoch_s = latent2d.train(cfg, ctx, x_train, x_test[:2000])
    x_train, x_test = x_train.cpu(), x_test.cpu()
    gen = torch.Generator().manual_seed(ctx.seed + cfg.stream)
    train_elbo = model.log_px(x_train[:cfg.n_train_eval], cfg.eval_samples, gen)["elbo"]
    test_elbo = model.log_px(x_test, cfg.eval_samples, gen)["elbo"]
    z_test = latent2d.encode_means(model, x_test)
    ref = slice(0, cfg.knn_reference)
    lat = overlap(z_test, y_test, latent2d.encode_means(model, x_train[ref]), full.y[ref], x_train[ref], cfg.knn)
    rows, cols = cfg.samples
    z = torch.randn(rows, cols, cfg.latent_dim, generator=gen)
    samples = DigitGrid(latent2d.decode_means(model, z), tuple(f"row {r + 1}" for r in range(rows)), ())
    ends = torch.randn(2, cfg.pairs, cfg.latent_dim, generator=gen)
    interp = DigitGrid(latent2d.decode_means(model, latent2d.interpolate(ends[0], ends[1], cfg.steps)),
                       tuple(f"pair {p + 1}" for p in range(cfg.pairs)),
                       tuple(f"t={t:.2f}" for t in torch.linspace(0, 1, cfg.steps).tolist()))
    metrics = {
        "history": history, "epochs": cfg.epochs, "n_train": len(x_train), "n_test": len(x_test),
        **dict(zip(("train_elbo", "train_elbo_se"), latent2d.mean_se(train_elbo))),
        **dict(zip(("test_elbo", "test_elbo_se"), latent2d.mean_se(test_elbo))),
        "timing": {"train_s": sum(epoch_s), "epoch_s_mean": float(np.mean(epoch_s))},
        "latent": lat,
    }
    figures = {"curves": latent2d.curves_figure(history), "samples": samples, "interpolations": interp,
               "latent": latent2d.latent_figure(z_test, y_test, "encoder means, test images")}
    return Result(metrics, figures)
