"""The whole pipeline on tiny data the tests write: smoke run, caching, staleness, determinism, verify."""
from __future__ import annotations

import dataclasses
import json
import struct

from click.testing import CliRunner

import reproduce
from conftest import smoke
from experiments.lib import data as mnist
from pipeline import figures
from pipeline.registry import Registry


def registry(out):
    return json.loads((out / "results.json").read_text())


def test_smoke_run_writes_report_registry_and_figures(first_run):
    """--smoke --all writes a PDF of at most five pages, every section's entry, and every figure it names."""
    out, result = first_run
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF") and (out / "supplement.pdf").exists()
    reg = registry(out)
    assert set(reg["sections"]) == set(reproduce.SECTIONS)
    for entry in reg["sections"].values():
        assert entry["smoke"] and entry["seed"] == 0 and entry["wall_time_s"] > 0
        for fig in entry["figures"].values():
            assert (out / fig["file"]).is_file() and fig["module"].startswith("experiments/")
    assert reg["provenance"]["split_sizes"] == {"train": 500, "val": 500, "test": 500}
    assert "pages of 5" in result.output


def png_size(path):
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return height, width


def test_digit_grids_have_the_expected_shapes(first_run):
    """Each digit grid PNG is rows x cols digits at SCALE pixels each with GAP-pixel gutters."""
    out, _ = first_run
    reg = registry(out)["sections"]
    expected = {("q1", "recon_val"): (3, 10), ("q1", "recon_train"): (3, 10), ("q2", "samples"): (2, 10),
                ("q3", "recon_train"): (3, 10), ("q3", "samples"): (2, 10), ("q4", "examples"): (1, 10),
                ("extra", "samples"): (7, 10)}
    cell = 28 * figures.SCALE + figures.GAP
    for (section, name), (rows, cols) in expected.items():
        fig = reg[section]["figures"][name]
        assert (fig["rows"], fig["cols"]) == (rows, cols) and len(fig["row_labels"]) == rows
        assert png_size(out / fig["file"]) == (rows * cell - figures.GAP, cols * cell - figures.GAP)


def test_second_run_reuses_every_fresh_section(copied, tiny_data):
    """Rerunning with nothing changed recomputes nothing and leaves every entry as it was."""
    before = registry(copied)["sections"]
    result = smoke(tiny_data, copied, "--all")
    assert result.exit_code == 0, result.output
    assert all(f"[{name}] fresh" in result.output for name in reproduce.SECTIONS)
    assert registry(copied)["sections"] == before


def test_force_reruns_and_only_replaces_that_entry(copied, tiny_data):
    """--force --only q2 recomputes q2 alone and replaces only its registry entry."""
    before = registry(copied)["sections"]
    result = smoke(tiny_data, copied, "--only", "q2", "--force")
    assert result.exit_code == 0, result.output
    after = registry(copied)["sections"]
    assert after["q2"]["finished_at"] >= before["q2"]["finished_at"] and "[q2] running (--force)" in result.output
    assert {k: v for k, v in after.items() if k != "q2"} == {k: v for k, v in before.items() if k != "q2"}


def test_config_change_makes_the_section_and_its_dependants_stale(copied, tiny_data, monkeypatch):
    """Changing Q1's configuration marks q1 stale (configuration) and everything downstream (upstream)."""
    from experiments.brief import q1_vae
    monkeypatch.setattr(q1_vae, "SMOKE", dataclasses.replace(q1_vae.SMOKE, lr=2e-3))
    result = CliRunner().invoke(reproduce.cli, ["--smoke", "--list", "--out", str(copied), "--checkpoints",
                                                str(copied.parent / "report-ckpt")])
    lines = result.output.splitlines()
    state = {line.split()[0]: line.split()[1] for line in lines[1:] if line and line.split()[0] in reproduce.SECTIONS}
    # Q1 and the sections that require it; Q3 and the findings' models share Q1's code, not its run,
    # and the companion's sections do not use Q1
    downstream = {"q1", "q2", "q4", "q4conv", "extra"}
    assert state == {name: "stale" if name in downstream else "fresh" for name in reproduce.SECTIONS}
    assert "why: configuration changed" in result.output and "why: an upstream section changed" in result.output


def test_code_change_is_named(copied, tiny_data):
    """A section whose recorded code hash differs is stale, and the reason names the changed file."""
    from pipeline.runner import Options, Runner
    import torch
    reg = Registry(copied / "results.json")
    entry = reg.entry("q2")
    entry["code_files"]["experiments/brief/q2_sampling.py"] = "0" * 64
    entry["key_parts"]["code"] = "1" * 64
    entry["cache_key"] = "f" * 64
    reg.write(*reg.prepare("q2", entry, reg.data["provenance"]))
    opts = Options(out=copied, checkpoints=copied.parent / "report-ckpt", data_dir=tiny_data,
                   device=torch.device("cpu"), seed=0, threads=torch.get_num_threads(), smoke=True)
    assert Runner(opts).status("q2") == ["code changed: experiments/brief/q2_sampling.py"]


def test_code_hash_covers_every_imported_experiment_module():
    """A section's code key includes the modules it imports, transitively (Q4 -> vae -> models, prob, data)."""
    from pipeline.cache import code_files
    from pipeline.runner import section_module
    files = code_files(section_module("q4"))
    for module in ("brief/q4_loglik", "lib/vae", "lib/models", "lib/prob", "lib/data", "lib/runtime", "lib/contract"):
        assert f"experiments/{module}.py" in files
    for module in ("brief/q3_latent_opt", "lib/plotting"):
        assert f"experiments/{module}.py" not in files


def test_missing_prerequisite_runs_first_and_says_so(tiny_data, tmp_path):
    """--only q2 with no Q1 checkpoint runs Q1 first and says why."""
    result = smoke(tiny_data, tmp_path / "report", "--only", "q2")
    assert result.exit_code == 0, result.output
    assert "[q1] needed by q2, running it first (no results yet)" in result.output
    assert set(registry(tmp_path / "report")["sections"]) == {"q1", "q2"}


def test_corrupt_checkpoint_is_retrained_with_a_warning(copied, tiny_data):
    """A checkpoint whose bytes changed is detected by its SHA-256 and the section is recomputed."""
    entry = registry(copied)["sections"]["q1"]
    path = copied.parent / "report-ckpt" / entry["checkpoint"]["file"]
    path.write_bytes(path.read_bytes()[:-10])
    result = smoke(tiny_data, copied, "--only", "q1")
    assert result.exit_code == 0, result.output
    assert "[q1] warning: checkpoint" in result.output and "corrupt" in result.output
    assert without_timing(registry(copied)["sections"]["q1"]) == without_timing(entry)


def without_timing(entry):
    return {k: v for k, v in entry["metrics"].items() if k != "timing"}


def test_two_runs_give_identical_numbers(first_run, tiny_data, tmp_path):
    """Two runs from scratch with the same seed, sections side by side in workers and one after another in
    this process, give exactly the same numbers in every section."""
    result = smoke(tiny_data, tmp_path / "again", "--all", "--jobs", "1")
    assert result.exit_code == 0, result.output
    first, second = registry(first_run[0])["sections"], registry(tmp_path / "again")["sections"]
    for name in reproduce.SECTIONS:
        assert without_timing(first[name]) == without_timing(second[name]), name


def tree(*folders):
    return {str(p): p.read_bytes() for f in folders for p in sorted(f.rglob("*")) if p.is_file()}


def test_verify_reproduces_and_never_touches_the_report(copied, tiny_data):
    """--verify recomputes into scratch/, finds every number within tolerance, and leaves report/ and checkpoints as they were."""
    before = tree(copied, copied.parent / "report-ckpt")
    result = smoke(tiny_data, copied, "--verify", "--only", "q2")
    assert result.exit_code == 0, result.output
    assert "all within tolerance" in result.output and "q1.val.neg_elbo" in result.output
    assert tree(copied, copied.parent / "report-ckpt") == before


def test_verify_fails_on_a_changed_number(copied, tiny_data):
    """A recorded number that the code does not reproduce makes --verify print FAIL and exit non-zero."""
    reg = Registry(copied / "results.json")
    entry = reg.entry("sup")
    entry["metrics"]["test_acc"] += 0.01
    reg.write(*reg.prepare("sup", entry, reg.data["provenance"]))
    result = smoke(tiny_data, copied, "--verify", "--only", "sup")
    assert result.exit_code == 1
    assert any(line.startswith("sup.test_acc") and line.endswith("FAIL") for line in result.output.splitlines())


def test_short_run_on_the_real_files(real_data, tmp_path):
    """A smoke run of sup and Q1 on the real MNIST files records their canonical MD5s and smoke-sized splits."""
    out = tmp_path / "report"
    result = smoke(real_data, out, "--only", "sup,q1")
    assert result.exit_code == 0, result.output
    provenance = registry(out)["provenance"]
    assert provenance["data_md5"] == mnist.RAW_MD5
    assert provenance["split_sizes"] == {"train": 500, "val": 500, "test": 500}


def test_with_two_jobs_the_longest_chain_of_recorded_work_starts_first(copied, tiny_data):
    """Ready sections are ordered by their recorded seconds plus their dependants' longest chain (1 s when never timed)."""
    import torch

    from pipeline.runner import Options, Runner

    opts = Options(out=copied, checkpoints=copied.parent / "report-ckpt", data_dir=tiny_data, device=torch.device("cpu"),
                   seed=0, threads=1, smoke=True, jobs=2)
    runner = Runner(opts)
    runner._state = {"q1": "stale", "q3": "stale", "stan_gd": "stale", "stan_nn": "stale"}
    runner._durations = {"q1": 1.0, "q3": 1.0, "stan_gd": 5.0, "stan_nn": 9.0}
    # q3: 1 + q3x_long (1) + extra (1) = 3; q1: 1 + one of q2, q4, q4conv, extra (1) = 2
    assert (runner.chains()["q3"], runner.chains()["q1"]) == (3.0, 2.0)
    assert runner.ready() == ["stan_nn", "stan_gd", "q3", "q1"]
