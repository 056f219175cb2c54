"""--verify's tolerances: selecting integers, the spread across seeds (pooled, Student's t, Bonferroni, headline caps),
leaving a seed out, another thread count; the device plumbing."""
from __future__ import annotations

import json
import math
import statistics

import pytest
import torch

import reproduce
from conftest import smoke
from pipeline.runner import Runner
from pipeline.spread import spread_of
from pipeline import tolerance
from pipeline.tolerance import FALSE_ALARM, multiple, pooled, siblings, t_quantile, t_two_sided
from pipeline.verify import compare, judge, leave_one_out

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


def spread_registry(metrics: dict, seeds=(0, 1, 2)) -> dict:
    return {"spread": {"smoke": False, "seeds": list(seeds), "sections": {"sup": {"config": {"epochs": 3}, "metrics": metrics}}}}


def test_the_t_tail_and_quantile_match_closed_forms():
    """P(|T_2| > t) = 1 - t / sqrt(t^2 + 2); P(|T_1| > t) = 1 - 2 atan(t) / pi; the 95% points are 4.303 and 12.706."""
    for t in (0.3, 2.0, 40.0):
        assert t_two_sided(t, 2) == pytest.approx(1 - t / (t * t + 2) ** 0.5, rel=1e-9)
        assert t_two_sided(t, 1) == pytest.approx(1 - 2 * math.atan(t) / math.pi, rel=1e-9)
    assert t_quantile(0.05, 2) == pytest.approx(4.302653, abs=1e-6)
    assert t_quantile(0.05, 1) == pytest.approx(12.706205, abs=1e-6)


def test_pooling_takes_the_rms_of_the_nearest_nonzero_sds_and_never_less_than_its_own():
    """Each element: max(own SD, RMS over the nonzero SDs of the 3 nearest, shifted inward at the ends); a window of zeros
    takes the whole list's nonzero SDs."""
    assert pooled([3.0, 4.0, 0.0, 0.0], 3) == [(max(3.0, 12.5 ** 0.5), 2), (4.0, 2), (4.0, 1), (4.0, 1)]
    assert pooled([0.0, 0.0, 0.0, 2.0], 2) == [(2.0, 1), (2.0, 1), (2.0, 1), (2.0, 1)]


def test_siblings_are_the_same_field_of_other_models():
    """models.q1.fd's siblings are models.*.fd (the largest group differing in one component), not models.q1.*."""
    keys = ["models.q1.fd", "models.q1.recall", "models.q3.fd", "models.q3.recall", "models.q4.fd", "test_acc"]
    assert siblings("models.q1.fd", keys) == ["models.q1.fd", "models.q3.fd", "models.q4.fd"]
    assert siblings("test_acc", keys) == ["test_acc"]


def test_cross_device_tolerance_is_the_t_multiple_of_the_spread():
    """A scalar with three seeds passes within sqrt(2) t_2(1 - a/2) SDs, a = FALSE_ALARM / numbers covered; a count also
    within the seeds' range; the row states the rate a per number."""
    registry = spread_registry({"test_loss": {"values": [0.03, 0.031, 0.029], "sd": 0.001},
                                "active": {"values": [70, 77, 90], "sd": 0.0}})
    width = multiple(2, 2) * 0.001
    assert width == pytest.approx(2 ** 0.5 * t_quantile(FALSE_ALARM / 2, 2) * 0.001)
    recorded = entry(HERE, test_loss=0.03, active=77)
    inside = entry(ELSEWHERE, test_loss=0.03 + 0.99 * width, active=85)
    outside = entry(ELSEWHERE, test_loss=0.03 + 1.01 * width, active=91)
    assert verdicts(compare("sup", recorded, inside, registry)) == {"sup.test_loss": True, "sup.active": True}
    assert verdicts(compare("sup", recorded, outside, registry)) == {"sup.test_loss": False, "sup.active": False}
    assert [r.rate for r in compare("sup", recorded, inside, registry)] == [FALSE_ALARM / 2] * 2


def test_an_epoch_whose_seed_sd_is_small_by_chance_takes_its_neighbours():
    """Issue 22's case: val_acc at epoch 5 off by 0.0023 where its own SD is 0.00057 and its neighbours' 0.0013 to 0.0028
    (4 SD: 0.00227, a false alarm) passes; 0.1 off still fails."""
    sds = [0.004, 0.0028, 0.0013, 0.0021, 0.00057, 0.0019, 0.0024, 0.0016]
    registry = spread_registry({"val_acc": {"values": [[0.97] * 8] * 3, "sd": sds}})
    recorded = entry(HERE, val_acc=[0.97, 0.975, 0.978, 0.981, 0.9837, 0.984, 0.985, 0.986])
    near, far = [list(recorded["metrics"]["val_acc"]) for _ in range(2)]
    near[4], far[4] = 0.9814, 0.8837
    assert verdicts(compare("sup", recorded, entry(ELSEWHERE, val_acc=near), registry)) == {"sup.val_acc": True}
    assert verdicts(compare("sup", recorded, entry(ELSEWHERE, val_acc=far), registry)) == {"sup.val_acc": False}


def test_a_table_of_items_pools_over_all_of_them():
    """One image's ESS whose own SD and its neighbours' are 0 while other images' are 0.3 gets the table's RMS SD."""
    sds = [0.0, 0.0, 0.0, 0.3, 0.3, 0.3]
    registry = spread_registry({"ess": {"values": [[[1.0] * 3] * 2] * 3, "sd": sds}})
    recorded = entry(HERE, ess=[[1.0, 1.0, 1.0], [1.2, 1.3, 1.1]])
    moved = entry(ELSEWHERE, ess=[[1.4, 1.0, 1.0], [1.2, 1.3, 1.1]])
    far = entry(ELSEWHERE, ess=[[9.0, 1.0, 1.0], [1.2, 1.3, 1.1]])
    assert verdicts(compare("sup", recorded, moved, registry)) == {"sup.ess": True}
    assert verdicts(compare("sup", recorded, far, registry)) == {"sup.ess": False}


def test_a_choice_is_shown_not_compared_across_devices_and_equal_on_the_same(monkeypatch):
    """A key in the module's CHOICES (the worst-fitted image) may differ on another machine, never on the same one."""
    from pipeline.runner import section_module
    monkeypatch.setattr(section_module("sup"), "CHOICES", ("check.is_worst",), raising=False)
    recorded = entry(HERE, check={"is_worst": 1})
    assert verdicts(compare("sup", recorded, entry(ELSEWHERE, check={"is_worst": 16}))) == {"sup.check.is_worst (a choice)": True}
    assert verdicts(compare("sup", recorded, entry(HERE, check={"is_worst": 16}))) == {"sup.check.is_worst (a choice)": False}


def test_a_headline_moved_by_ten_percent_fails_unless_its_seeds_spread_wider():
    """sup's headline (test_acc) is capped at HEADLINE_CAP of its value where the cap's own false-alarm rate is at most
    CAP_MAX_RATE, so a 10% change fails; with a seed spread near 10% it stays uncapped and is flagged."""
    recorded, moved = entry(HERE, test_acc=0.99), entry(ELSEWHERE, test_acc=0.99 * 1.1)
    series = {"values": [[0.0] * 200] * 3, "sd": [0.001] * 200}  # 200 more numbers: a Bonferroni share too small for t_2
    narrow = spread_registry({"test_acc": {"values": [0.99, 0.98, 1.0], "sd": 0.01}, "val_acc": series})
    row = compare("sup", recorded, moved, narrow)[0]
    assert not row.ok and row.tolerance == pytest.approx(tolerance.HEADLINE_CAP * 0.99) and not row.uncapped
    assert row.rate == pytest.approx(t_two_sided(tolerance.HEADLINE_CAP * 0.99 / (2 ** 0.5 * 0.01), 2))
    assert row.rate <= tolerance.CAP_MAX_RATE
    wide = spread_registry({"test_acc": {"values": [0.99, 0.9, 1.0], "sd": 0.05}, "val_acc": series})
    row = compare("sup", recorded, moved, wide)[0]
    assert row.ok and row.uncapped


def test_leaving_a_seed_out_passes_a_consistent_spread_and_names_an_outlier():
    """Each seed against tolerances from the others: a per-epoch series and scalars that vary alike pass; a seed whose
    test_acc is 10% off fails in exactly the rows that hold it out."""
    series = [[0.5 + 0.01 * s + 0.1 * e for e in range(6)] for s in (0, 1, 2)]
    metrics = lambda accs: {"val_acc": {"values": series, "sd": [0.01] * 6},  # noqa: E731
                            "test_acc": {"values": accs, "sd": statistics.stdev(accs)}}
    registry = spread_registry(metrics([0.990, 0.991, 0.989]))
    assert all(row.ok for row in leave_one_out(registry))
    failed = [r.metric for r in leave_one_out(spread_registry(metrics([0.990, 0.991, 0.89]))) if not r.ok]
    assert failed == ["sup.test_acc (seed 2 vs 0)", "sup.test_acc (seed 2 vs 1)"]


def test_a_list_of_records_is_compared_field_by_field_within_the_spread():
    """Numbers inside a list of records (like q* per fit budget) get the spread's tolerance across devices, per field
    (two elements pooled: 4 degrees of freedom; four numbers covered)."""
    star = lambda m: [{"mean": m, "se": 10.0}, {"mean": m + 1.0, "se": 10.0}]  # noqa: E731
    spread = spread_of([{"star": star(-200.0)}, {"star": star(-190.0)}, {"star": star(-210.0)}])
    assert spread["star.mean"]["sd"] == [10.0, 10.0] and spread["star.se"]["sd"] == [0.0, 0.0]
    registry = {"spread": {"smoke": False, "seeds": [0, 1, 2], "sections": {"sup": {"config": {"epochs": 3}, "metrics": spread}}}}
    recorded = entry(HERE, star=star(-200.0))
    assert verdicts(compare("sup", recorded, entry(ELSEWHERE, star=star(-215.0)), registry))["sup.star.mean"]
    far = -200.0 - 1.01 * multiple(4, 4) * 10.0
    assert not verdicts(compare("sup", recorded, entry(ELSEWHERE, star=star(far)), registry))["sup.star.mean"]


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
    assert "tolerances from the spread over seeds 0, 1 where recorded" in result.output


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


def test_a_main_run_declared_like_its_restarts_takes_their_pooled_spread(monkeypatch):
    """A run whose seeds agreed (SD 0) but which is one of ten restarts that disagree passes a stuck-mode value."""
    monkeypatch.setitem(tolerance.NOISE, "sup", {"acc": ("like", "restarts.acc"), "restarts.": "items"})
    restarts = [[1.0] * 9 + [0.8], [1.0] * 8 + [0.8, 1.0], [1.0] * 10]
    sds = [statistics.stdev(column) for column in zip(*restarts)]
    registry = spread_registry({"acc": {"values": [1.0, 1.0, 1.0], "sd": 0.0}, "restarts.acc": {"values": restarts, "sd": sds}})
    recorded = entry(HERE, acc=1.0, restarts={"acc": restarts[0]})
    assert verdicts(compare("sup", recorded, entry(ELSEWHERE, acc=0.8, restarts={"acc": restarts[1]}), registry))["sup.acc"]
    monkeypatch.setitem(tolerance.NOISE, "sup", {})
    assert not verdicts(compare("sup", recorded, entry(ELSEWHERE, acc=0.8, restarts={"acc": restarts[1]}), registry))["sup.acc"]


def test_a_number_declared_log_is_compared_as_its_logarithm(monkeypatch):
    """An ESS (1 to M) declared "log": a jump from 1.02 to 3.8 within the items' log spread passes, to 400 fails."""
    monkeypatch.setitem(tolerance.NOISE, "sup", {"ess": "log"})
    values = [[1.0, 2.5, 1.1, 1.9], [1.6, 1.0, 2.2, 1.0], [1.0, 1.3, 1.0, 2.6]]
    sds = [statistics.stdev(column) for column in zip(*values)]
    registry = spread_registry({"ess": {"values": values, "sd": sds}})
    recorded = entry(HERE, ess=[1.02, 1.0, 1.0, 1.0])
    assert verdicts(compare("sup", recorded, entry(ELSEWHERE, ess=[3.8, 1.0, 1.0, 1.0]), registry)) == {"sup.ess (log)": True}
    assert verdicts(compare("sup", recorded, entry(ELSEWHERE, ess=[400.0, 1.0, 1.0, 1.0]), registry)) == {"sup.ess (log)": False}


def test_a_share_of_a_count_declared_with_its_unit_passes_one_unit_and_fails_two(monkeypatch):
    """162 of 784 pixels in every seed (SD 0): 163 of 784 is within the count's resolution, 164 of 784 is not."""
    monkeypatch.setitem(tolerance.NOISE, "sup", {"share": ("unit", 1 / 784)})
    registry = spread_registry({"share": {"values": [162 / 784] * 3, "sd": 0.0}})
    recorded = entry(HERE, share=162 / 784)
    assert verdicts(compare("sup", recorded, entry(ELSEWHERE, share=163 / 784), registry)) == {"sup.share": True}
    assert verdicts(compare("sup", recorded, entry(ELSEWHERE, share=164 / 784), registry)) == {"sup.share": False}


def test_leaving_a_seed_out_uses_the_sections_own_seeds_or_the_records():
    """A section recorded with five seeds gives 5 x 4 rows per number, named by its seeds; one without a list, the record's."""
    registry = spread_registry({"test_acc": {"values": [0.99, 0.991, 0.989, 0.99, 0.992], "sd": 0.001}}, seeds=(0, 1, 2))
    registry["spread"]["sections"]["sup"]["seeds"] = [0, 1, 2, 3, 7]
    rows = leave_one_out(registry)
    assert len(rows) == 20 and "sup.test_acc (seed 7 vs 3)" in {r.metric for r in rows}
    older = spread_registry({"test_acc": {"values": [0.99, 0.991, 0.989], "sd": 0.001}}, seeds=(0, 4, 5))
    assert {r.metric for r in leave_one_out(older)} >= {"sup.test_acc (seed 5 vs 4)"}


def test_leaving_a_seed_out_with_the_headline_moved_ten_percent_fails_it():
    """With move=1.1, each comparison gives the headline's row alone, and a narrow spread fails it everywhere."""
    registry = spread_registry({"test_acc": {"values": [0.99, 0.991, 0.989], "sd": 0.001}})
    rows = leave_one_out(registry, move=1.1)
    assert len(rows) == 6 and not any(r.ok for r in rows) and {r.metric.split(" (")[0] for r in rows} == {"sup.test_acc"}


def test_a_reproduced_registry_is_judged_without_training():
    """judge() compares the sections both registries hold: within tolerance passes, a number outside fails."""
    recorded = {**spread_registry({"test_acc": {"values": [0.99, 0.991, 0.989], "sd": 0.001}}),
                "sections": {"sup": entry(HERE, test_acc=0.990)}}
    assert verdicts(judge(recorded, {"sections": {"sup": entry(ELSEWHERE, test_acc=0.9905)}}, ["sup", "q1"])) == {"sup.test_acc": True}
    assert verdicts(judge(recorded, {"sections": {"sup": entry(ELSEWHERE, test_acc=0.9)}}, ["sup"])) == {"sup.test_acc": False}


def test_a_spread_of_one_section_keeps_the_others_with_their_own_seeds(copied, tiny_data):
    """--spread --only sup over seeds 0, 1 keeps a section of an older record (one seed list for all) under its seeds."""
    registry = json.loads((copied / "results.json").read_text())
    registry["spread"] = {"seeds": [0, 5, 6], "smoke": True, "commit": "x", "env": {}, "finished_at": "x", "sections": {
        "q1": {"config": {}, "metrics": {"gap": {"values": [1.0, 2.0, 3.0], "sd": 1.0}}}}}
    (copied / "results.json").write_text(json.dumps(registry))
    assert smoke(tiny_data, copied, "--spread", "--seeds", "0,1", "--only", "sup").exit_code == 0
    sections = json.loads((copied / "results.json").read_text())["spread"]["sections"]
    assert sections["q1"]["seeds"] == [0, 5, 6] and sections["sup"]["seeds"] == [0, 1]


def test_a_perturbation_moves_every_parameter_by_exactly_one_unit_in_the_last_place():
    """perturb(): each element becomes its float32 neighbour above or below (both occur), reproducibly for one k."""
    from pipeline.jitter import perturb
    p = torch.randn(1000)
    moved, again = p.clone(), p.clone()
    perturb([moved], torch.Generator().manual_seed(1))
    perturb([again], torch.Generator().manual_seed(1))
    up, down = torch.nextafter(p, torch.tensor(math.inf)), torch.nextafter(p, torch.tensor(-math.inf))
    assert bool(((moved == up) | (moved == down)).all()) and 0 < int((moved == up).sum()) < 1000
    assert torch.equal(moved, again)


def test_a_jitter_perturbs_each_optimizer_once_before_its_first_step_and_only_while_installed():
    """install(k): the first step of an optimizer starts from perturbed parameters, later steps and other runs do not."""
    from pipeline import jitter
    assert jitter.install(0) is None

    def trained(k: int) -> torch.Tensor:
        w = torch.nn.Parameter(torch.ones(50))
        opt = torch.optim.SGD([w], lr=0.0)  # a step changes nothing: only the perturbation moves w
        handle = jitter.install(k)
        try:
            for _ in range(3):
                opt.step()
        finally:
            if handle is not None:
                handle.remove()
        return w.detach()

    once = trained(2)
    assert bool((once != 1.0).all()) and bool(((once - 1.0).abs() <= 2.0 ** -23).all())  # one ulp, not three
    assert torch.equal(trained(0), torch.ones(50)) and torch.equal(trained(2), once)


def jitter_registry(spread: dict, reruns: dict) -> dict:
    return {**spread_registry(spread), "jitter": {"smoke": False, "seed": 0, "seeds": [0, 1, 2, 3], "sections": {
        "sup": {"config": {"epochs": 3}, "metrics": reruns}}}}


def test_a_number_the_perturbations_moved_takes_their_spread_and_one_they_left_takes_the_seeds():
    """test_loss moved by the reruns gets their (narrow) tolerance, so a change inside the seeds' spread fails; val_acc,
    untouched by them, keeps the seeds' tolerance; a registry of another seed ignores the jitter record."""
    seeds = {"test_loss": {"values": [0.03, 0.04, 0.02], "sd": 0.01}, "val_acc": {"values": [0.9, 0.91, 0.89], "sd": 0.01}}
    reruns = {"test_loss": {"values": [0.03, 0.0301, 0.0299, 0.03], "sd": 0.0001},
              "val_acc": {"values": [0.9] * 4, "sd": 0.0}}
    registry, recorded = jitter_registry(seeds, reruns), entry(HERE, test_loss=0.03, val_acc=0.9)
    recorded["seed"] = 0
    rerun = entry(ELSEWHERE, test_loss=0.031, val_acc=0.91)
    rows = {r.metric: r for r in compare("sup", recorded, rerun, registry)}
    family = 2 + 2  # every number of both records
    assert rows["sup.test_loss"].tolerance == pytest.approx(multiple(3, family) * 0.0001)
    assert not rows["sup.test_loss"].ok and rows["sup.val_acc"].ok
    assert rows["sup.val_acc"].tolerance == pytest.approx(multiple(2, family) * 0.01)
    other_seed = {**recorded, "seed": 5}
    assert all(r.ok for r in compare("sup", other_seed, rerun, registry))


def test_leaving_a_perturbation_out_sets_the_seed_spread_aside_only_when_leaving_a_seed_out():
    """kind="jitter" holds each rerun out against the other reruns (4 x 3 rows); kind="spread" ignores the jitter record,
    so the seeds' wide spread passes a seed the narrow reruns would fail."""
    from pipeline.verify import leave_one_out
    seeds = {"test_loss": {"values": [0.03, 0.04, 0.02], "sd": 0.01}}
    reruns = {"test_loss": {"values": [0.03, 0.0301, 0.0299, 0.03], "sd": 0.0000816}}
    registry = jitter_registry(seeds, reruns)
    rows = leave_one_out(registry, kind="jitter")
    assert len(rows) == 12 and all(r.ok for r in rows) and "sup.test_loss (perturbation 3 vs 0)" in {r.metric for r in rows}
    assert all(r.ok for r in leave_one_out(registry))


def test_a_number_declared_shown_is_equal_on_the_same_device_and_not_compared_on_another(monkeypatch):
    """A restart that converges or not ("shown"): 0 against 0.0017 passes across devices, fails on the same one."""
    monkeypatch.setitem(tolerance.NOISE, "sup", {"final_loss": "shown"})
    registry = spread_registry({"final_loss": {"values": [0.0, 0.0, 0.0], "sd": 0.0}})
    recorded = entry(HERE, final_loss=0.0)
    assert verdicts(compare("sup", recorded, entry(ELSEWHERE, final_loss=0.0017), registry)) == {"sup.final_loss (a choice)": True}
    assert verdicts(compare("sup", recorded, entry(HERE, final_loss=0.0017), registry)) == {"sup.final_loss (a choice)": False}


def test_leaving_a_seed_out_tests_only_the_numbers_the_seeds_serve():
    """With a jitter record that moves test_loss, leaving a seed out compares val_acc alone (an outlying seed of test_loss,
    judged by the reruns in --verify, is not the seed model's to pass)."""
    from pipeline.verify import leave_one_out
    seeds = {"test_loss": {"values": [0.03, 0.03, 0.9], "sd": 0.5}, "val_acc": {"values": [0.9, 0.91, 0.89], "sd": 0.01}}
    reruns = {"test_loss": {"values": [0.03, 0.0301, 0.0299, 0.03], "sd": 0.0001}, "val_acc": {"values": [0.9] * 4, "sd": 0.0}}
    registry = {**jitter_registry(seeds, reruns), "sections": {"sup": {**entry(HERE, test_loss=0.03, val_acc=0.9), "seed": 0}}}
    rows = leave_one_out(registry)
    assert rows and {r.metric.split(" (")[0] for r in rows} == {"sup.val_acc"} and all(r.ok for r in rows)


def test_a_choice_may_pick_a_different_number_of_items_on_another_device(monkeypatch):
    """Blends the CNN finds (a CHOICES list of records): two recorded, one reproduced elsewhere, is shown, not failed."""
    from pipeline.runner import section_module
    monkeypatch.setattr(section_module("sup"), "CHOICES", ("blends",), raising=False)
    recorded = entry(HERE, blends=[{"row": 1, "col": 7}, {"row": 8, "col": 5}])
    rows = compare("sup", recorded, entry(ELSEWHERE, blends=[{"row": 2, "col": 7}]))
    assert verdicts(rows) == {"sup.blends.row (a choice)": True, "sup.blends.col (a choice)": True}
