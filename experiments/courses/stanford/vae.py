"""Companion, Stanford STATS305C assignment 6, Problems 3 and 4: amortized variational inference with a 2-D MLP VAE.

Questions: train the course's VAE on the 60,000 binarized training images; an 8 x 8 grid of samples
(decoder means) and their critique (3e); the encoder means coloured by digit (which classes overlap,
which stand apart, and why; 3f); interpolations between 8 pairs of prior draws (is the change smooth,
for which pairs; 3g); and short answers (4a why amortize, 4b one way to improve the VAE, 4c why a
Bernoulli latent breaks the reparameterisation gradient) that the companion's template writes from
this section's, tor_posterior's and tor_grad's numbers.

Method: the course's architecture (encoder 784-512-256, decoder 2-256-512-784, ReLU, 2-D latent,
Bernoulli pixels binarized at 0.5, closed-form KL), Adam, batches of 64, on all 60,000 training images, for the
course's 20 epochs (``epochs``; the course reports about 10 minutes for them). Overlap of
digits in the latent plane: a k-nearest-neighbour classifier of the test images' encoder means
against training means; its confusion between each pair of digits is set beside how alike the two
digits' mean images are in pixel space (cosine similarity), with a rank correlation over the 45 pairs.
The critique of the samples: the digit of each of many prior draws by the same nearest-neighbour vote
(the digit mix the prior produces), the test ELBO per digit (which digits the model fits worst), and
the share of gray decoder-mean pixels in samples and in reconstructions; and the digits the
supervised CNN (section sup) reads in the 8 x 8 samples, with the blends it gives no digit half its
probability, after checking how often it reads test digits, sharp and blurred, as their true digit
(and how often a reconstruction keeps its digit, as the CNN reads it). Interpolations: the pixel distance between consecutive decoded
images (a jump shows as one step much larger than the mean), and the digits the CNN reads along each path.

Rerun: ``python reproduce.py --only stan_vae``
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from experiments.lib import latent2d, sample_metrics
from experiments.lib.contract import Context, DigitGrid, Result
from experiments.lib.data import binarize

SECTION = "stan_vae"
TITLE = "Stanford STATS305C: amortized inference with a 2-D MLP VAE"
REQUIRES = ("sup",)  # its CNN reads the digits of decoded images (samples, interpolations)


@dataclass(frozen=True)
class Config:
    latent_dim: int = 2  # d (the course: 2)
    hidden: tuple[int, ...] = (512, 256)  # the course's encoder 784-512-256; the decoder mirrors it, 2-256-512-784
    activation: str = "relu"  # hidden nonlinearity
    closed_form_kl: bool = True  # the course uses the closed-form KL
    batch_size: int = 64  # images per Adam step (the course: 64, 938 batches an epoch)
    epochs: int = 20  # passes over the 60,000 images, at least 2 (the course: 20)
    lr: float = 1e-3  # Adam learning rate
    eval_samples: int = 10  # draws of q per image for the final ELBOs
    n_train_eval: int = 10000  # training images (the first ones) whose ELBO is reported
    samples: tuple[int, int] = (8, 8)  # rows and columns of the prior-sample grid (the course: 8 x 8)
    prior_draws: int = 10000  # prior draws whose nearest-neighbour digit gives the samples' digit mix
    gray: tuple[float, float] = (0.25, 0.75)  # a decoder-mean pixel in this range is "gray" (neither ink nor background)
    smooth_ratio: float = 2.0  # an interpolation is smooth when its largest step is at most this many times its mean step
    pairs: int = 8  # interpolations between pairs of prior draws (the course: 8)
    steps: int = 10  # images along each interpolation
    knn: int = 15  # neighbours of the latent-space classifier
    knn_reference: int = 10000  # training images (the first ones) it compares against
    blend_below: float = 0.5  # a decoded image the CNN gives no digit this much probability is read as a blend
    stream: int = 40  # generators seeded with seed + stream + k


SMOKE = Config(epochs=2, eval_samples=2, n_train_eval=500, knn_reference=500, samples=(2, 5), pairs=2, steps=5, prior_draws=500)

HEADLINE = ("test_elbo", "test ELBO (nats)")
TOLERANCES = {"test_elbo": (1e-4, 3.0), "train_elbo": (1e-4, 3.0)}
# which pairs overlap most, which digit the prior draws most often, which digit the CNN reads in a decoded image and
# which images it reads as blends: argmaxes and thresholds over near-ties that another machine may decide otherwise
CHOICES = ("latent.top_pairs", "critique.commonest", "critique.sample_digits", "critique.blends", "interpolation.cnn_digits")


def ranks(v: torch.Tensor) -> torch.Tensor:
    """Ranks 0..n-1 of the values (ties broken by position), for a Spearman correlation."""
    r = torch.empty(len(v))
    r[v.argsort()] = torch.arange(len(v), dtype=torch.float32)
    return r


def knn_digit(z: torch.Tensor, z_ref: torch.Tensor, y_ref: torch.Tensor, k: int, chunk: int = 2000) -> torch.Tensor:
    """The majority digit of the k nearest reference latents (R, d) of each latent z (N, d): (N,)."""
    out = []
    for zc in z.split(chunk):
        nearest = torch.cdist(zc, z_ref).topk(k, largest=False).indices  # (n, k)
        out.append(torch.nn.functional.one_hot(y_ref[nearest], 10).sum(1).argmax(1))  # votes (n, 10) -> (n,)
    return torch.cat(out)


def overlap(z_test: torch.Tensor, y_test: torch.Tensor, z_ref: torch.Tensor, y_ref: torch.Tensor, x_ref: torch.Tensor,
            k: int) -> dict:
    """Which digits overlap in the latent plane (k-NN confusion) and whether they look alike (pixel cosine)."""
    pred = knn_digit(z_test, z_ref, y_ref, k)
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
    apart = int(rate.diag().argmax())
    return {"accuracy": (pred == y_test).float().mean().item(), "per_digit_accuracy": rate.diag().tolist(),
            "apart": apart, "most_overlapping": int(rate.diag().argmin()),
            # the pixel cosine of the most separated digit's mean image with each other digit's, averaged
            "apart_cosine_mean": ((cosine[apart].sum() - 1) / 9).item(),
            "top_pairs": top, "spearman": spearman, "cosine_mean": pair_cos.mean().item()}


def interpolation_steps(images: torch.Tensor) -> torch.Tensor:
    """Pixel distance (L2) between consecutive decoded images along each path (P, T, 784): (P, T - 1)."""
    return (images[:, 1:] - images[:, :-1]).norm(dim=-1)


def read_digits(classifier, images01: np.ndarray) -> torch.Tensor:
    """The supervised CNN's class probabilities (N, 10) for decoded images in [0, 1] (..., 28, 28)."""
    images = torch.as_tensor(images01).reshape(-1, 1, 28, 28)
    return sample_metrics.cnn_probs(classifier, images.to(next(classifier.parameters()).device)).cpu()


def blends(probs: torch.Tensor, cols: int, below: float) -> list[dict]:
    """The grid's images (row-major, ``cols`` wide) whose likeliest digit has probability under ``below``: position
    and the two likeliest digits with their probabilities."""
    top, digit = probs.topk(2, dim=1)
    return [{"row": i // cols + 1, "col": i % cols + 1, "digits": digit[i].tolist(), "probs": top[i].tolist()}
            for i in range(len(probs)) if top[i, 0] < below]


def critique(cfg: Config, model, gen: torch.Generator, z_ref: torch.Tensor, y_ref: torch.Tensor, x_test: torch.Tensor,
             z_test: torch.Tensor, test_elbo: torch.Tensor, y_test: torch.Tensor, sample_means: torch.Tensor,
             classifier, side: torch.Generator) -> dict:
    """Problem 3e's critique in numbers: the digit mix of prior samples (nearest-neighbour digit in the latent plane),
    the test ELBO per digit, and how gray the sample means are against reconstructions; the CNN's reading of the
    sample grid (its digits, and the blends it gives no digit), checked first on test digits sharp and blurred (the
    known-bad blur of ``sample_metrics``, whose extra draws come from ``side``), and how often it reads a
    reconstruction as the digit it reconstructs (whether the 2-D model keeps a digit's identity)."""
    z = torch.randn(cfg.prior_draws, cfg.latent_dim, generator=gen)
    mix = torch.bincount(knn_digit(z, z_ref, y_ref, cfg.knn), minlength=10).float() / cfg.prior_draws
    per_digit = [test_elbo[y_test == d].mean().item() for d in range(10)]
    lo, hi = cfg.gray

    def gray(m: torch.Tensor) -> float:
        return ((m > lo) & (m < hi)).float().mean().item()
    with torch.no_grad():
        recon = model.decoder_mean(latent2d.encode_means(model, x_test[:1000]))
    sharp, labels = x_test[:1000].reshape(-1, 1, 28, 28), y_test[:1000]
    blurred = sample_metrics.known_bad(sharp, side)["blurred"]

    def read_right(images: torch.Tensor) -> float:  # the share the CNN reads as the label of the test digit behind it
        return (read_digits(classifier, images.numpy()).argmax(1) == labels).float().mean().item()
    probs = read_digits(classifier, sample_means.numpy())  # (rows * cols, 10)
    return {"reader": {"sharp": read_right(sharp), "blurred": read_right(blurred), "gray_blurred": gray(blurred)},
            "recon_read_as_label": read_right(recon), "sample_digits": probs.argmax(1).tolist(),
            "blends": blends(probs, sample_means.shape[1], cfg.blend_below), "digit_mix": mix.tolist(), "rarest": int(mix.argmin()), "commonest": int(mix.argmax()),
            "elbo_per_digit": per_digit, "hardest": int(np.argmin(per_digit)), "easiest": int(np.argmax(per_digit)),
            # median distance from the origin of each digit's test encodings (the prior weights the centre)
            "radius_per_digit": [z_test[y_test == d].norm(dim=1).quantile(0.5).item() for d in range(10)],
            "gray_samples": gray(sample_means), "gray_recon": gray(recon), "ink_data": x_test.mean().item(),
            "ink_samples": sample_means.mean().item()}


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
    z_ref, y_ref = latent2d.encode_means(model, x_train[ref]), full.y[ref]
    lat = overlap(z_test, y_test, z_ref, y_ref, x_train[ref], cfg.knn)
    rows, cols = cfg.samples
    z = torch.randn(rows, cols, cfg.latent_dim, generator=gen)
    sample_means = latent2d.decode_means(model, z)
    samples = DigitGrid(sample_means, tuple(f"row {r + 1}" for r in range(rows)), ())
    classifier = sample_metrics.load_classifier(ctx.require("sup"), ctx.device)
    crit = critique(cfg, model, gen, z_ref, y_ref, x_test, z_test, test_elbo, y_test, torch.from_numpy(sample_means),
                    classifier, torch.Generator().manual_seed(ctx.seed + cfg.stream + 1))
    ends = torch.randn(2, cfg.pairs, cfg.latent_dim, generator=gen)
    path = latent2d.interpolate(ends[0], ends[1], cfg.steps)  # (P, T, d)
    path_images = latent2d.decode_means(model, path)  # (P, T, 28, 28)
    steps = interpolation_steps(torch.from_numpy(path_images).flatten(2))  # (P, T - 1)
    labels = knn_digit(path.reshape(-1, cfg.latent_dim), z_ref, y_ref, cfg.knn).reshape(cfg.pairs, cfg.steps)
    read = read_digits(classifier, path_images).reshape(cfg.pairs, cfg.steps, 10)  # what the decoded images show
    ratio = steps.max(1).values / steps.mean(1)
    interpolation = [{"digits": [int(d) for d in row], "changes": int((row[1:] != row[:-1]).sum()),
                      "cnn_digits": probs.argmax(1).tolist(), "cnn_confidence": probs.max(1).values.tolist(),
                      "max_over_mean_step": r.item(), "smooth": bool(r <= cfg.smooth_ratio)}
                     for row, probs, r in zip(labels, read, ratio)]
    # rows named by the digits the CNN reads along them, each once in order (the latent k-NN's are not what they show)
    joined = [[d for t, d in enumerate(r["cnn_digits"]) if t == 0 or d != r["cnn_digits"][t - 1]] for r in interpolation]
    interp = DigitGrid(path_images, tuple(f"pair {p + 1}: {'-'.join(map(str, js))}" for p, js in enumerate(joined)),
                       tuple(f"t={t:.2f}" for t in torch.linspace(0, 1, cfg.steps).tolist()))
    metrics = {
        "history": history, "epochs": cfg.epochs, "n_train": len(x_train), "n_test": len(x_test),
        **dict(zip(("train_elbo", "train_elbo_se"), latent2d.mean_se(train_elbo))),
        **dict(zip(("test_elbo", "test_elbo_se"), latent2d.mean_se(test_elbo))),
        "timing": {"train_s": sum(epoch_s), "epoch_s_mean": float(np.mean(epoch_s))},
        "latent": lat, "critique": crit, "interpolation": interpolation,
        "smooth_pairs": sum(r["smooth"] for r in interpolation),
        # the last epoch's gain in the held-out ELBO, against the first epoch's: has the curve flattened?
        "last_epoch_gain": history["eval_elbo"][-1] - history["eval_elbo"][-2],
        "first_epoch_gain": history["eval_elbo"][1] - history["eval_elbo"][0],
    }
    figures = {"curves": latent2d.curves_figure(history), "samples": samples, "interpolations": interp,
               "latent": latent2d.latent_figure(z_ref, y_ref, f"encoder means, first {len(z_ref):,} training images")}
    return Result(metrics, figures)
