"""Latent optimization: the per-row optimizer and the initialisation of the q vectors."""
from __future__ import annotations

import dataclasses
import io
import math

import pytest
import torch
from torch import nn

from experiments.brief import q1_vae
from experiments.lib.contract import Context
from experiments.brief.q3_latent_opt import Config, LatentTable, RowAdam, aggregate_fit, fit_latents
from experiments.lib.runtime import Progress


def run_rows(optimizer_cls, init, batches, targets):
    table = nn.Embedding(*init.shape, sparse=True)
    with torch.no_grad():
        table.weight.copy_(init)
    opt = optimizer_cls([table.weight], lr=0.1)
    for step, rows in enumerate(batches):
        idx = torch.tensor(rows)
        loss = ((table(idx) - targets[step, idx]) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return table.weight.detach()


def reference_rows(init, batches, targets):
    """torch.optim.Adam on each row alone, stepped only when the row is in the batch."""
    rows = [nn.Parameter(init[r].clone()) for r in range(len(init))]
    opts = [torch.optim.Adam([p], lr=0.1) for p in rows]
    for step, batch in enumerate(batches):
        for r in batch:
            opts[r].zero_grad()
            ((rows[r] - targets[step, r]) ** 2).sum().backward()
            opts[r].step()
    return torch.stack([p.detach() for p in rows])


BATCHES = [[0, 2], [1, 2], [2, 5], [0, 4], [1, 5], [2, 0]]


def test_row_adam_is_adam_on_each_row_over_its_own_updates():
    """Every row of RowAdam follows torch.optim.Adam fed only that row's gradients; a row never in a batch never moves."""
    g = torch.Generator().manual_seed(0)
    init, targets = torch.randn(6, 3, generator=g), torch.randn(len(BATCHES), 6, 3, generator=g)
    got = run_rows(RowAdam, init, BATCHES, targets)
    torch.testing.assert_close(got, reference_rows(init, BATCHES, targets))
    assert torch.equal(got[3], init[3])


def test_sparse_adam_is_not_adam_per_row():
    """torch.optim.SparseAdam corrects bias with the global step, so a row first seen late takes another step."""
    g = torch.Generator().manual_seed(0)
    init, targets = torch.randn(6, 3, generator=g), torch.randn(len(BATCHES), 6, 3, generator=g)
    got = run_rows(torch.optim.SparseAdam, init, BATCHES, targets)
    assert not torch.allclose(got[5], reference_rows(init, BATCHES, targets)[5])


def test_sparse_adam_moves_only_the_rows_in_the_batch():
    """With SparseAdam a row keeps its value through every step whose batch does not hold it: no momentum leaks."""
    g = torch.Generator().manual_seed(0)
    init, targets = torch.randn(6, 3, generator=g), torch.randn(len(BATCHES), 6, 3, generator=g)
    after = [run_rows(torch.optim.SparseAdam, init, BATCHES[:k], targets) for k in range(1, len(BATCHES) + 1)]
    for k in range(1, len(BATCHES)):
        for row in set(range(6)) - set(BATCHES[k]):
            assert torch.equal(after[k][row], after[k - 1][row]), (k, row)


def test_latent_initialisation_follows_the_brief():
    """mu_i ~ N(0, I) and r_i = log s^2 with s ~ N(0, I): E[exp(r)] = E[s^2] = 1 and E[r] = E[log chi2_1] = -1.27."""
    table = LatentTable(20_000, 10, torch.Generator().manual_seed(0))
    mu, r = table.mean.weight.detach(), table.logvar.weight.detach()
    assert abs(mu.mean()) < 0.01 and abs(mu.var() - 1) < 0.02
    assert abs(r.exp().mean() - 1) < 0.03
    # E[log chi^2_1] = -gamma - log 2 = -1.2704
    assert abs(r.mean() + 1.2704) < 0.03


def test_aggregate_of_the_brief_initialisation_is_not_the_prior():
    """mu_i ~ N(0, I), E s^2 = 1: the aggregate's covariance is about 2I, so its moment-matched KL is d/2 (1 - log 2)."""
    table = LatentTable(20_000, 200, torch.Generator().manual_seed(0))
    stats = aggregate_fit(table.mean.weight.detach(), table.logvar.weight.detach())
    assert stats["kl_to_prior"] == pytest.approx(100 * (1 - math.log(2)), abs=1.0)  # 30.7 nats
    assert 1.7 < stats["eig_min"] and stats["eig_max"] < 2.3


def test_continuing_from_the_saved_state_equals_one_uninterrupted_run():
    """Two epochs, then one more from the saved state, give the same generator as three epochs in one go."""
    model = q1_vae.Config(latent_dim=4, channels=4, eval_per_digit=1)
    cfg = Config(epochs=3, batch_size=8, snapshot_epochs=(), model=model)
    x = torch.rand(24, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    ctx = Context(data=None, device=torch.device("cpu"), seed=0, progress=Progress("t", io.StringIO()), require=None)
    args = (x, torch.arange(2), torch.arange(4), torch.zeros(2, 4))
    torch.manual_seed(0)
    straight = fit_latents(cfg, ctx, *args)
    torch.manual_seed(0)
    first = fit_latents(dataclasses.replace(cfg, epochs=2), ctx, *args)
    torch.manual_seed(123)  # the continuation restores the noise stream itself
    rest = fit_latents(cfg, ctx, *args, resume=first.state)
    for a, b in zip(straight.decoder.state_dict().values(), rest.decoder.state_dict().values()):
        torch.testing.assert_close(a, b)
    assert rest.history["neg_elbo"] == straight.history["neg_elbo"][2:]
