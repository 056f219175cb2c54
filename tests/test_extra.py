"""The findings' sample judgement on a classifier whose answers are known."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from experiments.findings.assess import judge
from experiments.lib.sample_metrics import cnn_features


def test_copies_of_one_image_have_no_diversity_and_one_label():
    """Copies of one image: pixel diversity 0, every sample the same label, recall near 0."""
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))  # features: the flattened pixels
    real = torch.rand(50, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    out = judge(classifier, cnn_features(classifier, real), real[:1].expand(50, 1, 28, 28), k=3)
    assert out["diversity"] == pytest.approx(0, abs=1e-6) and out["top_label_share"] == 1.0
    assert out["recall"] <= 1 / 50 and sum(out["label_share"]) == pytest.approx(1)
