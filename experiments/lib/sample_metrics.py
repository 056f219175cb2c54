# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""How good are a generator's samples: two measures on the supervised CNN's features, validated on known-bad sets.

Features: the penultimate layer of the section-2 CNN (its hidden ReLU layer, 128 units), a space in
which digits of one class lie together and non-digits lie apart.

(1) Frechet distance (Heusel et al. 2017, "FID" with our CNN in place of Inception): fit a Gaussian
    to the real features, N(m_r, C_r), and one to the generated, N(m_g, C_g);
        FD = |m_r - m_g|^2 + tr(C_r + C_g - 2 (C_r^{1/2} C_g C_r^{1/2})^{1/2}),
    the squared 2-Wasserstein distance between the two Gaussians (0 when they are equal). The matrix
    square roots are taken by eigendecomposition of symmetric positive semi-definite matrices.
(2) Precision and recall with k-NN radii (Kynkaanniemi et al. 2019): each real feature vector is the
    centre of a ball reaching its k-th nearest real neighbour; precision is the share of generated
    vectors inside some real ball (are the samples realistic?), recall the share of real vectors
    inside some ball of the generated set (do the samples cover the data?). A good generator has
    both near those of held-out real digits; one repeated digit has precision near 1 but recall near 0.

A measure is trusted only if it ranks real held-out digits above every known-bad set
(``known_bad``: pixel noise, blurred digits, the mean image, a constant image, one digit repeated);
``validate`` checks this on the same sizes as the samples it will judge (precision and recall together,
by the smaller of the two); ``validate_each`` checks each measure on its own, with further bad sets
made for the data being judged.
"""
from __future__ import annotations

import torch
from torchvision.transforms.functional import gaussian_blur

from experiments.lib.runtime import map_batches
from experiments.brief.sup_classification import build_cnn


def load_classifier(sup: dict, device: torch.device) -> torch.nn.Sequential:
    """The supervised CNN of section ``sup`` from its artifacts (``arch``, ``model``), in eval mode."""
    classifier = build_cnn(**sup["arch"]).to(device)
    classifier.load_state_dict(sup["model"])
    return classifier.eval()


@torch.no_grad()
def cnn_probs(classifier: torch.nn.Sequential, images01: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """(N, 10) the CNN's class probabilities for images in [0, 1] (N, 1, 28, 28); it was trained on [-1, 1]."""
    return map_batches(lambda x: torch.softmax(classifier(2 * x - 1), dim=1), images01, batch_size=batch_size)


@torch.no_grad()
def cnn_features(classifier: torch.nn.Sequential, images01: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """(N, F) penultimate-layer features of images in [0, 1] (N, 1, 28, 28); the CNN was trained on [-1, 1]."""
    body = classifier[:-1].eval()  # every layer but the output layer (dropout is the identity in eval mode)
    return map_batches(lambda x: body(2 * x - 1), images01, batch_size=batch_size).double()


def sqrtm_psd(a: torch.Tensor) -> torch.Tensor:
    """The symmetric square root of a symmetric positive semi-definite matrix, by eigendecomposition."""
    # A = V diag(w) V^T  =>  A^{1/2} = V diag(sqrt(w)) V^T; round-off can make tiny w negative
    w, v = torch.linalg.eigh((a + a.T) / 2)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def frechet_gaussians(m1: torch.Tensor, c1: torch.Tensor, m2: torch.Tensor, c2: torch.Tensor) -> float:
    """|m1 - m2|^2 + tr(C1 + C2 - 2 (C1^{1/2} C2 C1^{1/2})^{1/2}): the Frechet distance of two Gaussians."""
    s1 = sqrtm_psd(c1)
    cross = sqrtm_psd(s1 @ c2 @ s1)  # same trace as (C1 C2)^{1/2}, but symmetric
    return ((m1 - m2) @ (m1 - m2) + c1.trace() + c2.trace() - 2 * cross.trace()).item()


def frechet_distance(feat_a: torch.Tensor, feat_b: torch.Tensor) -> float:
    """The Frechet distance between Gaussian fits (mean, covariance) of two feature sets (N, F)."""
    fit = lambda f: (f.double().mean(0), torch.cov(f.double().T))  # noqa: E731
    return frechet_gaussians(*fit(feat_a), *fit(feat_b))


def knn_radii(feat: torch.Tensor, k: int) -> torch.Tensor:
    """(N,) distance from each vector to its k-th nearest neighbour in the same set (itself excluded)."""
    d = torch.cdist(feat, feat)  # (N, N)
    return d.kthvalue(k + 1, dim=1).values  # the 1st smallest is the vector itself, at 0


def coverage(centres: torch.Tensor, radii: torch.Tensor, points: torch.Tensor) -> float:
    """Share of ``points`` (M, F) inside at least one ball (centres (N, F), radii (N,))."""
    return (torch.cdist(points, centres) <= radii[None, :]).any(1).double().mean().item()


def precision_recall(real_f: torch.Tensor, fake_f: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) of generated features against real ones."""
    return (coverage(real_f, knn_radii(real_f, k), fake_f), coverage(fake_f, knn_radii(fake_f, k), real_f))


def known_bad(real_images01: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Sets of the same size as ``real_images01`` (N, 1, 28, 28) that no good generator should produce."""
    n = len(real_images01)
    mean = real_images01.mean(0, keepdim=True)  # (1, 1, 28, 28): the average digit, a grey blob
    pick = int(torch.randint(n, (1,), generator=generator))
    return {
        "noise": torch.rand(real_images01.shape, generator=generator).to(real_images01.device),
        "blurred": gaussian_blur(real_images01, kernel_size=9, sigma=2.0),
        "mean image": mean.expand_as(real_images01).clone(),
        "constant": torch.full_like(real_images01, mean.mean().item()),
        "one digit": real_images01[pick:pick + 1].expand_as(real_images01).clone(),
    }


def score(real_f: torch.Tensor, fake_f: torch.Tensor, k: int) -> dict[str, float]:
    """Both measures of a generated feature set against the real reference features."""
    precision, recall = precision_recall(real_f, fake_f, k)
    return {"fd": frechet_distance(real_f, fake_f), "precision": precision, "recall": recall}


REAL = "held-out digits"  # the name of the held-out real set in every validation
BETTER = {"fd": -1, "precision": 1, "recall": 1}  # the sign of a measure's change for the better


def scored_sets(reference_f: torch.Tensor, held_out01: torch.Tensor, classifier, generator: torch.Generator, k: int,
                extra: dict[str, torch.Tensor] | None = None) -> dict[str, dict[str, float]]:
    """``score`` of the held-out digits, every ``known_bad`` set made from them and the ``extra`` sets, against the reference."""
    sets = {REAL: held_out01, **known_bad(held_out01, generator), **(extra or {})}
    return {name: score(reference_f, cnn_features(classifier, x), k) for name, x in sets.items()}


def passes_each(scores: dict[str, dict[str, float]]) -> dict[str, bool]:
    """Per measure: whether it ranks the held-out digits strictly better than every other set (no combination rule)."""
    real = scores[REAL]
    return {m: all(sign * (real[m] - s[m]) > 0 for name, s in scores.items() if name != REAL) for m, sign in BETTER.items()}


def validate_each(reference_f: torch.Tensor, held_out01: torch.Tensor, classifier, generator: torch.Generator, k: int,
                  extra: dict[str, torch.Tensor] | None = None) -> dict:
    """Each measure validated on its own (``passes_each``) over the known-bad sets and the ``extra`` sets (made for the
    data being judged, e.g. digits with a model's pixel noise): {"scores", "passes": {measure: bool}}."""
    scores = scored_sets(reference_f, held_out01, classifier, generator, k, extra)
    return {"scores": scores, "passes": passes_each(scores)}


def validate_binary(classifier, x_test: torch.Tensor, n: int, k: int, flip_rate: float,
                    seed: int) -> tuple[torch.Tensor, dict]:
    """The set-up for judging binary samples: binarized test digits x_test (N, 784) in a random order drawn with
    ``seed``; the first n give the reference features (n, F) that samples are scored against, the next n are checked
    by ``validate_each``, with the same digits with a ``flip_rate`` share of their pixels flipped among the bad sets
    (drawn with seed + 1). Returns (reference features, validation)."""
    order = torch.randperm(len(x_test), generator=torch.Generator().manual_seed(seed))
    reference = cnn_features(classifier, x_test[order[:n]].view(-1, 1, 28, 28))
    held_out = x_test[order[n:2 * n]].view(-1, 1, 28, 28)
    bad_gen = torch.Generator().manual_seed(seed + 1)
    flips = (torch.rand(held_out.shape, generator=bad_gen) < flip_rate).float().to(held_out.device)
    return reference, validate_each(reference, held_out, classifier, bad_gen, k, {"pixels flipped": (held_out - flips).abs()})


def validate(reference_f: torch.Tensor, held_out01: torch.Tensor, classifier, generator: torch.Generator,
             k: int) -> dict:
    """Each measure on held-out real digits and on every known-bad set; whether each ranks the real ones best.

    FD passes when the held-out digits have the lowest FD; precision/recall passes when every known-bad
    set has a lower min(precision, recall) than the held-out digits (a good set needs both).
    """
    scores = scored_sets(reference_f, held_out01, classifier, generator, k)
    real, bad = scores[REAL], [v for name, v in scores.items() if name != REAL]
    worst = lambda s: min(s["precision"], s["recall"])  # noqa: E731
    return {"scores": scores, "fd_passes": all(real["fd"] < b["fd"] for b in bad),
            "pr_passes": all(worst(real) > worst(b) for b in bad),
            "bad_fd_min": min(b["fd"] for b in bad), "bad_worst_max": max(worst(b) for b in bad)}
