"""The VAE machinery on synthetic data: training lowers the loss; evaluation and initialisation are right."""
from __future__ import annotations

import dataclasses
import io

import torch

from experiments.brief import q1_vae

from experiments.lib import vae
from experiments.lib.contract import Context
from experiments.lib.runtime import Progress, seed_everything


def synthetic(n: int, g: torch.Generator) -> torch.Tensor:
    """Bars at random rows: a structured data set in [-1, 1], (n, 1, 28, 28)."""
    x = -torch.ones(n, 1, 28, 28)
    rows = torch.randint(4, 24, (n,), generator=g)
    x[torch.arange(n), 0, rows] = 1.0
    return x


def test_training_lowers_the_loss_and_the_true_elbo():
    """Three epochs on structured data lower the training loss and the validation -ELBO each epoch."""
    seed_everything(0)
    g = torch.Generator().manual_seed(0)
    cfg = dataclasses.replace(q1_vae.Config(), latent_dim=8, channels=8, epochs=3, batch_size=32, snapshot_epochs=(3,))
    ctx = Context(data=None, device=torch.device("cpu"), seed=0, progress=Progress("t", io.StringIO()), require=dict)
    fit = vae.fit(cfg, ctx, synthetic(256, g), {"val": synthetic(128, g)}, {"val": synthetic(10, g)})
    running = fit.history["train_loss_running"]
    val = [row["neg_elbo"] for row in fit.history["val"]]
    assert running[0] > running[1] > running[2] and val[0] > val[1] > val[2]
    assert fit.snapshots[3]["recon"]["val"].shape == (10, 1, 28, 28)


def test_summary_counts_active_units():
    """A unit is active when its posterior mean varies over the data by more than the threshold."""
    mean = torch.zeros(100, 4)
    mean[:, 0] = torch.linspace(-1, 1, 100)  # variance ~0.34
    mean[:, 1] = torch.linspace(-0.05, 0.05, 100)  # variance ~0.0009
    terms = {"mse": torch.zeros(100), "kl": torch.zeros(100), "kl_nats": torch.zeros(100),
             "kl_dims": torch.zeros(100, 4), "neg_elbo": torch.zeros(100), "mean": mean}
    assert vae.summarize(terms, 1.0, 0.01)["active_units"] == 1


def test_units_holding_counts_the_fewest_units_for_a_share_of_the_kl():
    """With per-unit KL 5, 3, 1, 1 (total 10), 80% needs two units, 90% three, 100% four."""
    kl = torch.tensor([1.0, 5.0, 1.0, 3.0])
    assert [vae.units_holding(kl, s) for s in (0.8, 0.9, 1.0)] == [2, 3, 4]


def test_effective_kl_weight_for_the_brief():
    """D / (2 sigma_p^2 d) is 12.25 for MNIST, sigma_p = 0.4, d = 200, and 1 after dividing the KL weight by it."""
    beta = vae.effective_kl_weight(0.4, 200)
    assert abs(beta - 12.25) < 1e-12 and abs(vae.effective_kl_weight(0.4, 200, 1 / beta) - 1) < 1e-12


def test_prior_latents_are_fixed_by_the_seed_alone():
    """vae.prior_latents: the same seed gives the same standard-normal draws, another seed others."""
    a, b, c = vae.prior_latents(10, 200, 0), vae.prior_latents(10, 200, 0), vae.prior_latents(10, 200, 1)
    assert a.shape == (10, 200) and torch.equal(a, b) and not torch.equal(a, c)


def test_fit_summarises_parts_from_the_same_per_image_terms():
    """A part that covers a whole split repeats its summary; two equal halves average to the split's -ELBO."""
    seed_everything(0)
    g = torch.Generator().manual_seed(0)
    cfg = dataclasses.replace(q1_vae.Config(), latent_dim=8, channels=8, epochs=1, batch_size=32, snapshot_epochs=())
    ctx = Context(data=None, device=torch.device("cpu"), seed=0, progress=Progress("t", io.StringIO()), require=dict)
    half = torch.arange(64) % 2 == 0
    parts = {"all": ("val", torch.ones(64, dtype=torch.bool)), "a": ("val", half), "b": ("val", ~half)}
    h = vae.fit(cfg, ctx, synthetic(64, g), {"val": synthetic(64, g)}, {}, parts).history
    assert h["all"] == h["val"]
    assert abs((h["a"][0]["neg_elbo"] + h["b"][0]["neg_elbo"]) / 2 - h["val"][0]["neg_elbo"]) < 1e-3


def test_multi_sample_bound_is_the_elbo_for_one_sample_and_tighter_for_many():
    """-IWAE_k equals -ELBO_k for k = 1 and lies at or below it, image by image, for k = 20."""
    enc, dec = vae.build(8, 8, (-1.0, 1.0), torch.device("cpu"))
    x = synthetic(12, torch.Generator().manual_seed(1))
    one = q1_vae.multi_sample_bounds(enc, dec, x, 0.4, 1, torch.Generator().manual_seed(0), 5)
    many = q1_vae.multi_sample_bounds(enc, dec, x, 0.4, 20, torch.Generator().manual_seed(0), 5)
    assert torch.allclose(one["neg_iwae"], one["neg_elbo_k"], atol=1e-3)
    assert torch.all(many["neg_iwae"] <= many["neg_elbo_k"] + 1e-4)


def test_overfit_numbers_take_differences_of_the_right_subsets():
    """gap = val - train and control = val_a - val_b per epoch, with standard errors added in quadrature."""
    col = lambda *v: {"neg_elbo": list(v), "neg_elbo_se": [3.0] * len(v)}  # noqa: E731
    h = {"train": col(10.0, 8.0), "val": col(11.0, 10.0), "val_a": col(12.0, 9.0), "val_b": col(10.0, 11.0)}
    m = q1_vae.overfit_numbers(h, window=1)
    assert m["gap"] == [1.0, 2.0] and m["control"] == [2.0, -2.0] and m["control_late"] == -2.0
    assert abs(m["gap_se"] - 18 ** 0.5) < 1e-12 and m["val_trend"] == -1.0 and m["train_trend"] == -2.0
