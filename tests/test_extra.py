"""The sample-quality measures of the additional findings, on a classifier whose answers are known."""
from __future__ import annotations

import math

import pytest
import torch

from experiments.extra import classify


def fixed_classifier(labels: torch.Tensor, margin: float = 50.0):
    """A 'CNN' that answers ``labels`` with near-certainty, whatever the image."""
    return lambda x: margin * torch.nn.functional.one_hot(labels[: len(x)], 10).float()


def test_ten_equally_frequent_sure_labels_score_ten():
    """Confident, equally frequent labels give the maximal score 10 and label entropy ln 10."""
    images = torch.rand(100, 1, 28, 28)
    out = classify(fixed_classifier(torch.arange(100) % 10), images, 0.9)
    assert out["classifier_score"] == pytest.approx(10, rel=1e-4)
    assert out["label_entropy"] == pytest.approx(math.log(10), rel=1e-6) and out["confident_share"] == 1.0


def test_one_sure_label_scores_one():
    """Every sample confidently the same digit: score 1 and label entropy 0, however confident."""
    out = classify(fixed_classifier(torch.zeros(100, dtype=torch.long)), torch.rand(100, 1, 28, 28), 0.9)
    assert out["classifier_score"] == pytest.approx(1, abs=1e-4) and out["label_entropy"] == 0.0


def test_identical_samples_have_no_diversity():
    """Copies of one image have pixel diversity 0; independent uniform images about 1/3."""
    same = torch.rand(1, 1, 28, 28).expand(100, 1, 28, 28)
    labels = torch.zeros(100, dtype=torch.long)
    assert classify(fixed_classifier(labels), same, 0.9)["diversity"] == pytest.approx(0, abs=1e-6)
    uniform = classify(fixed_classifier(labels), torch.rand(100, 1, 28, 28), 0.9)["diversity"]
    assert uniform == pytest.approx(1 / 3, rel=0.02)
