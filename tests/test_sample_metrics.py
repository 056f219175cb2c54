"""Sample-quality measures: the Frechet distance against closed forms, k-NN precision/recall on known cases."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from experiments.lib.sample_metrics import (REAL, cnn_features, frechet_distance, frechet_gaussians, known_bad, passes_each,
                                        precision_recall, sqrtm_psd, validate)


def random_rotation(n: int, g: torch.Generator) -> torch.Tensor:
    return torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))[0]


def test_sqrtm_squares_back():
    """The eigendecomposition square root S of a PSD matrix A is symmetric with S S = A."""
    g = torch.Generator().manual_seed(0)
    b = torch.randn(6, 4, generator=g, dtype=torch.float64)
    a = b @ b.T  # rank 4: two zero eigenvalues
    s = sqrtm_psd(a)
    torch.testing.assert_close(s, s.T)
    torch.testing.assert_close(s @ s, a)


def test_frechet_of_commuting_gaussians_is_closed_form():
    """C1 = Q diag(a) Q^T, C2 = Q diag(b) Q^T: FD = |m1 - m2|^2 + sum_j (sqrt a_j - sqrt b_j)^2."""
    g = torch.Generator().manual_seed(1)
    q = random_rotation(5, g)
    a, b = torch.rand(5, generator=g, dtype=torch.float64) * 3, torch.rand(5, generator=g, dtype=torch.float64) * 3
    m1, m2 = torch.randn(5, generator=g, dtype=torch.float64), torch.randn(5, generator=g, dtype=torch.float64)
    want = ((m1 - m2) ** 2).sum() + ((a.sqrt() - b.sqrt()) ** 2).sum()
    got = frechet_gaussians(m1, q @ torch.diag(a) @ q.T, m2, q @ torch.diag(b) @ q.T)
    assert got == pytest.approx(want.item(), rel=1e-9)


def test_frechet_of_one_dimensional_gaussians():
    """In one dimension FD is the squared 2-Wasserstein distance (m1 - m2)^2 + (s1 - s2)^2."""
    got = frechet_gaussians(torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([-2.0]), torch.tensor([[0.25]]))
    assert got == pytest.approx(9 + 1.5 ** 2)


def test_frechet_distance_of_samples():
    """A feature set against itself scores 0; against a shifted copy, the squared shift."""
    f = torch.randn(500, 8, generator=torch.Generator().manual_seed(2))
    assert frechet_distance(f, f) == pytest.approx(0, abs=1e-6)
    assert frechet_distance(f, f + 3) == pytest.approx(8 * 9, rel=1e-6)


def test_precision_recall_of_known_cases():
    """The same set: (1, 1); one real point repeated: precision 1, recall low; a far-away set: (0, 0)."""
    real = torch.randn(400, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert precision_recall(real, real, k=3) == (1.0, 1.0)
    p, r = precision_recall(real, real[:1].expand(400, 5), k=3)
    assert p == 1.0 and r < 0.02
    assert precision_recall(real, real + 100, k=3) == (0.0, 0.0)


def test_known_bad_sets_match_the_real_ones():
    """Every known-bad set has the real images' shape, stays in [0, 1], and the repeated digit is one image."""
    real = torch.rand(20, 1, 28, 28, generator=torch.Generator().manual_seed(4))
    bad = known_bad(real, torch.Generator().manual_seed(5))
    assert set(bad) == {"noise", "blurred", "mean image", "constant", "one digit"}
    for images in bad.values():
        assert images.shape == real.shape and images.min() >= 0 and images.max() <= 1
    assert torch.equal(bad["one digit"], bad["one digit"][:1].expand_as(real))


def test_validation_ranks_clustered_data_above_known_bad():
    """With features that separate blob-like digits from the rest, both measures rank held-out data first."""
    g = torch.Generator().manual_seed(6)
    # 'digits': a random bright square per image, so each image differs and the set is spread out
    def digits(n):
        x = torch.zeros(n, 1, 28, 28)
        for i, (r, c) in enumerate(torch.randint(4, 18, (n, 2), generator=g).tolist()):
            x[i, 0, r:r + 6, c:c + 6] = 1.0
        return x
    classifier = nn.Sequential(nn.AvgPool2d(4), nn.Flatten(), nn.Identity())  # features: 7x7 pooled pixels
    ref = cnn_features(classifier, digits(300))
    out = validate(ref, digits(300), classifier, g, k=3)
    assert out["fd_passes"] and out["pr_passes"]


def test_each_measure_is_validated_on_its_own():
    """A measure passes only if it ranks the held-out set strictly best; a tie, or one bad set better, fails it."""
    scores = {REAL: {"fd": 10.0, "precision": 0.9, "recall": 0.8},
              "noise": {"fd": 500.0, "precision": 0.95, "recall": 0.0},
              "blurred": {"fd": 300.0, "precision": 0.9, "recall": 0.1}}
    assert passes_each(scores) == {"fd": True, "precision": False, "recall": True}
