"""--verify's tolerances: selecting integers, the spread across seeds, another thread count; the device plumbing."""
from __future__ import annotations

import json

import pytest
import torch

import reproduce
from conftest import smoke
from pipeline.runner import Runner
from pipeline.spread import spread_of
from pipeline.verify import SPREAD_SDS, compare

HERE = {"device": "cpu", "device_name": "Intel Xeon", "threads": 1}
ELSEWHERE = {"device": "cpu", "device_name": "AMD EPYC", "threads": 1}


def entry(env, **metrics):
    return {"env": env, "smoke": False, "config": {"epochs": 3}, "metrics": metrics}


def verdicts(rows):
    return {r.metric: r.ok for r in rows}


def test_a_selecting_integer_is_compared_by_what_it_selects():
    """Best epoch 3 recorded, 2 reproduced, with near-equal validation losses there: passes; far apart: fails."""
    recorded = entry(HERE, val_loss=[0.30, 0.1001, 0.1000], best_val_loss_epoch=3)
    close = entry(ELSEWHERE, val_loss=[0.30, 0.0999, 0.1000], best_val_loss_epoch=2)
    far = entry(ELSEWHERE, val_loss=[0.30, 0.0200, 0.1000], best_val_loss_epoch=2)
    assert verdicts(compare("sup", recorded, close))["sup.best_val_loss_epoch (by val_loss)"]
    assert not verdicts(compare("sup", recorded, far))["sup.best_val_loss_epoch (by val_loss)"]


def test_spread_of_gives_values_and_sample_sd():
    """The spread of scalars and per-epoch lists is the sample SD across runs, per element; timings are left out."""
    runs = [{"a": 1.0, "b": [0.0, 2.0], "timing": {"s": 1.0}}, {"a": 2.0, "b": [0.0, 4.0], "timing": {"s": 9.0}},
            {"a": 3.0, "b": [0.0, 6.0], "timing": {"s": 5.0}}]
    assert spread_of(runs) == {"a": {"values": [1.0, 2.0, 3.0], "sd": 1.0},
                               "b": {"values": [[0.0, 2.0], [0.0, 4.0], [0.0, 6.0]], "sd": [0.0, 2.0]}}


def test_cross_device_tolerance_is_a_multiple_of_the_spread():
    """Across devices a number passes within SPREAD_SDS standard deviations over seeds, an integer also within the seeds' range."""
    recorded = entry(HERE, test_acc=0.9900, active=77)
    registry = {"spread": {"smoke": False, "seeds": [0, 1, 2], "sections": {"sup": {"config": {"epochs": 3}, "metrics": {
        "test_acc": {"values": [0.99, 0.989, 0.991], "sd": 0.001},
        "active": {"values": [70, 77, 90], "sd": 0.0}}}}}}
    inside = entry(ELSEWHERE, test_acc=0.99 - 0.9 * SPREAD_SDS * 0.001, active=85)
    outside = entry(ELSEWHERE, test_acc=0.99 - 1.1 * SPREAD_SDS * 0.001, active=91)
    assert verdicts(compare("sup", recorded, inside, registry)) == {"sup.test_acc": True, "sup.active": True}
    assert verdicts(compare("sup", recorded, outside, registry)) == {"sup.test_acc": False, "sup.active": False}


def test_a_list_of_records_is_compared_field_by_field_within_the_spread():
    """Numbers inside a list of records (like q* per fit budget) get the spread's tolerance across devices, per field."""
    star = lambda m: [{"mean": m, "se": 10.0}, {"mean": m + 1.0, "se": 10.0}]  # noqa: E731
    spread = spread_of([{"star": star(-200.0)}, {"star": star(-190.0)}, {"star": star(-210.0)}])
    assert spread["star.mean"]["sd"] == [10.0, 10.0] and spread["star.se"]["sd"] == [0.0, 0.0]
    registry = {"spread": {"smoke": False, "seeds": [0, 1, 2], "sections": {"sup": {"config": {"epochs": 3}, "metrics": spread}}}}
    recorded = entry(HERE, star=star(-200.0))
    assert verdicts(compare("sup", recorded, entry(ELSEWHERE, star=star(-215.0)), registry))["sup.star.mean"]
    assert not verdicts(compare("sup", recorded, entry(ELSEWHERE, star=star(-260.0)), registry))["sup.star.mean"]


def verify_with_two_threads(data, out):
    return smoke(data, out, "--verify", "--only", "sup", "--threads", "2", "--jobs", "1")


def test_a_registry_from_another_thread_count_verifies_and_a_moved_number_fails(copied, tiny_data):
    """Recorded with 1 thread, verified with 2: stale in plain words, all within tolerance; one number moved 10% fails by name."""
    listed = smoke(tiny_data, copied, "--list", "--threads", "2")
    assert "with 1 thread; this run is on" in listed.output and "with 2 threads" in listed.output
    result = verify_with_two_threads(tiny_data, copied)
    assert result.exit_code == 0, result.output
    assert "a different device/environment" in result.output and "all within tolerance" in result.output
    registry = json.loads((copied / "results.json").read_text())
    registry["sections"]["sup"]["metrics"]["test_loss"] *= 1.1
    (copied / "results.json").write_text(json.dumps(registry))
    result = verify_with_two_threads(tiny_data, copied)
    assert result.exit_code == 1
    assert [line.split()[0] for line in result.output.splitlines() if line.endswith("FAIL")] == ["sup.test_loss"]


def test_with_a_spread_recorded_another_thread_count_verifies_within_it(copied, tiny_data):
    """--spread over seeds 0 and 1 (seed 0 read from the registry) records every number's SD; verify uses it."""
    result = smoke(tiny_data, copied, "--spread", "--seeds", "0,1", "--only", "sup")
    assert result.exit_code == 0, result.output
    assert "seed 0: the registry's fresh results" in result.output
    spread = json.loads((copied / "results.json").read_text())["spread"]
    assert spread["seeds"] == [0, 1] and len(spread["sections"]["sup"]["metrics"]["val_acc"]["sd"]) == 2
    result = verify_with_two_threads(tiny_data, copied)
    assert result.exit_code == 0, result.output
    assert f"within {SPREAD_SDS:g} SD of the spread over seeds 0, 1" in result.output


def test_the_device_reaches_the_section(tiny_data, tmp_path, monkeypatch):
    """--device travels from the options through the job to the Context a section receives."""
    from experiments.lib import contract
    from experiments.brief import sup_classification
    seen = []

    def run(cfg, ctx):
        seen.append(ctx.device)
        return contract.Result({"x": 1.0})

    monkeypatch.setattr(sup_classification, "run", run)
    opts = reproduce.options(tmp_path / "report", tmp_path / "ckpt", tiny_data, "cpu", 0, 1, None, True, False)
    Runner(opts).run(["sup"])
    assert seen == [torch.device("cpu")]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_sections_run_on_cuda_side_by_side(tiny_data, tmp_path):
    """--device cuda with two jobs: sup and q1 share the one GPU and record it."""
    result = smoke(tiny_data, tmp_path / "report", "--only", "sup,q1", "--device", "cuda", "--jobs", "2")
    assert result.exit_code == 0, result.output
    sections = json.loads((tmp_path / "report" / "results.json").read_text())["sections"]
    assert {e["env"]["device"] for e in sections.values()} == {"cuda"}
