"""Stanford STATS305C's Problems 1 and 2 and the Stanford VAE's helpers, against exact answers."""
from __future__ import annotations

import pytest
import torch

from experiments.courses.stanford import classifier as stan_nn
from experiments.courses.stanford import gradient_descent as stan_gd
from experiments.courses.stanford import vae as stan_vae


def test_gradient_descent_matches_its_closed_form():
    """torch's SGD on x^T diag(a) x gives f(x_k) = sum_i a_i (1 - 2 lr a_i)^(2k) x0_i^2 at every iteration."""
    a = torch.tensor([0.05, 1.2, 0.3], dtype=torch.float64)
    x0 = torch.tensor([10.0, -3.0, 2.0], dtype=torch.float64)
    _, losses = stan_gd.run_optimization(x0, a, stan_gd.gd(0.8), 40)
    exact = stan_gd.gd_losses(x0, a, 0.8, 40)
    assert torch.allclose(losses, exact, rtol=1e-12, atol=0)


def test_a_negative_factor_flips_the_sign_every_step():
    """With 1 - 2 lr a_2 < 0 (1b: lr 0.8, a_2 = 1.2) x_2 changes sign at every one of the steps."""
    xs, _ = stan_gd.run_optimization(torch.tensor([10.0, 10.0], dtype=torch.float64),
                                     torch.tensor([0.05, 1.2], dtype=torch.float64), stan_gd.gd(0.8), 20)
    assert stan_gd.sign_changes(xs[:, 1]) == 20 and stan_gd.sign_changes(xs[:, 0]) == 0


def test_classifier_loss_is_torch_binary_cross_entropy():
    """Problem 2a's L(theta) equals nn.BCEWithLogitsLoss on the same logits and labels."""
    g = torch.Generator().manual_seed(0)
    logits, y = 3 * torch.randn(50, generator=g), (torch.rand(50, generator=g) < 0.5).float()
    assert torch.allclose(stan_nn.nll(logits, y), torch.nn.BCEWithLogitsLoss()(logits, y), atol=1e-6)


def test_dataset_rings_have_the_course_radii():
    """Positives lie within 0.5 of the radius, negatives between 0.7 and 1 of it, half and half."""
    cfg = stan_nn.Config()
    x, y = stan_nn.make_dataset(cfg, torch.Generator().manual_seed(0))
    r = x.norm(dim=1)
    assert y.sum() == cfg.points // 2
    assert r[y == 1].max() <= 0.5 * cfg.radius and r[y == 0].min() >= 0.7 * cfg.radius and r[y == 0].max() <= cfg.radius


def test_knn_digit_labels_separated_clusters_exactly():
    """Latents near one of two far-apart labelled clusters get that cluster's digit."""
    g = torch.Generator().manual_seed(0)
    ref = torch.cat([torch.randn(100, 2, generator=g), 20 + torch.randn(100, 2, generator=g)])
    labels = torch.cat([torch.full((100,), 3), torch.full((100,), 8)])
    z = torch.tensor([[0.5, -0.2], [19.0, 21.0]])
    assert stan_vae.knn_digit(z, ref, labels, 15, chunk=1).tolist() == [3, 8]


def test_blends_are_the_grid_images_whose_likeliest_digit_is_under_the_threshold():
    """In a 2 x 3 grid, only the image at row 2, column 1 (0.4 for digit 8, 0.35 for 3) has no digit at 0.5 or more."""
    probs = torch.full((6, 10), 0.0)
    probs[:, 1] = 0.9
    probs[3] = 0.0
    probs[3, 8], probs[3, 3], probs[3, 5] = 0.4, 0.35, 0.25
    (only,) = stan_vae.blends(probs, cols=3, below=0.5)
    assert only["row"] == 2 and only["col"] == 1 and only["digits"] == [8, 3]
    assert only["probs"] == pytest.approx([0.4, 0.35])
