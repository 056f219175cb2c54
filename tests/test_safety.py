"""Failing safely: concurrent runs lose nothing, checkpoints and figures belong to their output, bad input is
one line before any training, and files are written as the user would write them."""
from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import reproduce
from conftest import smoke, write_mnist
from experiments.lib import seeds
from pipeline import checkpoints, document, interrupts, registry, render, typeset
from pipeline.registry import Registry, locked
from pipeline.runner import MODULES, section_module
from test_cli import assert_one_line_error
from test_interrupts import LAUNCH
from test_render import TITLES, load

ROOT = Path(__file__).resolve().parent.parent


def states(result) -> dict[str, str]:
    lines = result.output.splitlines()[1:]
    return {line.split()[0]: line.split()[1] for line in lines if line and not line.startswith(" ")}


def rewrite(out: Path, change) -> None:
    """Apply ``change`` to the registry's JSON and write it back."""
    data = load(out)
    change(data)
    (out / "results.json").write_text(json.dumps(data))


# ------------------------------------------------------------------ 1. concurrent runs
def test_concurrent_runs_wait_for_each_other_and_both_results_stay(tiny_root, tmp_path):
    """Two runs into one folder (--only sup, --only q1) both wait for the lock with a message, and both sections end in the registry."""
    root, sums = tiny_root
    out, ckpt = tmp_path / "report", tmp_path / "ckpt"
    out.mkdir()
    env = {**os.environ, "TEST_MNIST_MD5": json.dumps(sums), "PYTHONUNBUFFERED": "1"}
    with locked(out, lambda message: None):  # a third run holds the folder while both start
        procs = [subprocess.Popen([sys.executable, str(LAUNCH), "--smoke", "--only", only, "--threads", "1",
                                   "--data-dir", str(root), "--out", str(out), "--checkpoints", str(ckpt)],
                                  stderr=subprocess.PIPE, text=True, env=env) for only in ("sup", "q1")]
        for proc in procs:
            assert "waiting: another run" in proc.stderr.readline()
    errors = [proc.communicate(timeout=300)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], errors
    sections = load(out)["sections"]
    assert set(sections) == {"sup", "q1"}
    assert all((ckpt / sections[n]["checkpoint"]["file"]).is_file() for n in sections)


# ------------------------------------------------------------------ 2. checkpoints belong to one output
def test_default_checkpoint_folder_is_one_per_output_folder(tmp_path):
    """Two output folders with the same last name get different default checkpoint folders."""
    a, b = checkpoints.default_folder(tmp_path / "x" / "report"), checkpoints.default_folder(tmp_path / "y" / "report")
    assert a != b and a.name.startswith("report-") and a.parent == ROOT / "checkpoints"


def test_prune_keeps_what_another_outputs_registry_points_at(tmp_path):
    """A checkpoint folder shared by two outputs: pruning for one never deletes the other's checkpoint."""
    folder = tmp_path / "ckpt"
    stores = [checkpoints.CheckpointStore(folder, tmp_path / out / "results.json") for out in ("a", "b")]
    for store, key in zip(stores, ("1" * 64, "2" * 64)):
        payload, record = store.encode("sup", key, {"w": 1})
        store.write(payload, record)
        Registry(store.registry).write(*Registry(store.registry).prepare("sup", {"checkpoint": record}, {}))
        store.prune("sup", record)
    assert sorted(p.name for p in folder.glob("*.pt")) == ["sup-1111111111111111.pt", "sup-2222222222222222.pt"]


# ------------------------------------------------------------------ 3. figures agree with numbers
def test_a_changed_figure_makes_its_section_stale_and_the_rerun_restores_it(copied, tiny_data):
    """A figure whose bytes differ from its recorded SHA-256 (an interrupted commit) makes the section stale, with the reason."""
    figure = copied / load(copied)["sections"]["q2"]["figures"]["samples"]["file"]
    original = figure.read_bytes()
    figure.write_bytes(original + b"\n")
    listed = smoke(tiny_data, copied, "--list")
    assert states(listed)["q2"] == "stale" and "is not the one recorded" in listed.output
    rerun = smoke(tiny_data, copied, "--only", "q2")
    assert rerun.exit_code == 0 and "[q2] running (figure figures/q2_samples.png" in rerun.output, rerun.output
    assert figure.read_bytes() == original


def test_the_lock_removes_temporary_files_of_an_interrupted_write(tmp_path):
    """Taking the folder's lock deletes the .tmp files a killed atomic write left, and nothing else."""
    (tmp_path / "figures").mkdir()
    leftovers = [tmp_path / ".results.json.x1.tmp", tmp_path / "figures" / ".q1_loss.svg.x2.tmp"]
    for path in [*leftovers, tmp_path / "results.json"]:
        path.write_text("")
    said = []
    with locked(tmp_path, said.append):
        pass
    assert not any(p.exists() for p in leftovers) and (tmp_path / "results.json").exists()
    assert said == [f"removed 2 temporary file(s) left in {tmp_path} by an interrupted run"]


def test_render_refuses_a_figure_that_is_not_the_recorded_one(copied):
    """A figure changed after its numbers were recorded stops the build, naming the section and the --force command."""
    (copied / "figures" / "q1_loss.svg").write_text("<svg/>")
    with pytest.raises(typeset.RenderError, match=r"q1_loss.svg of section q1 is not the one .*--only q1 --force"):
        render.build(load(copied), TITLES, copied)


# ------------------------------------------------------------------ 4. one line, found before training
@pytest.mark.parametrize("text, fragment", [
    (None, "author.toml is missing"),
    ("name = \"A\"\nusername = [\n", "is not valid TOML"),
    ("name = 3\nusername = \"a\"\n[ai_tools]\nused = true\ntext = \"t\"\n", "name must be a string, is 3"),
    ("name = \"A\"\nusername = \"a\"\n[ai_tools]\nused = \"yes\"\ntext = \"t\"\n", "ai_tools.used must be true or false"),
    ("name = \"A\"\nusername = \"a\"\n", "[ai_tools] must be a table, is missing"),
])
def test_bad_author_file_is_one_line_before_training(tiny_data, tmp_path, monkeypatch, text, fragment):
    """A missing, malformed or wrongly typed author.toml stops --all at once, and creates no output folder."""
    author = tmp_path / "author.toml"
    if text is not None:
        author.write_text(text)
    monkeypatch.setattr(document, "AUTHOR_FILE", author)
    result = smoke(tiny_data, tmp_path / "out", "--all")
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("partial", ["brief/q2.html.j2", "supplement/q1.html.j2", "report.html.j2"])
def test_missing_template_or_partial_is_one_line_before_training(tiny_data, tmp_path, monkeypatch, partial):
    """A missing report or supplement partial (or template) is an error naming it, before anything runs."""
    templates = tmp_path / "templates"
    shutil.copytree(document.TEMPLATES, templates)
    (templates / partial).unlink()
    monkeypatch.setattr(document, "TEMPLATES", templates)
    assert_one_line_error(smoke(tiny_data, tmp_path / "out", "--only", "sup"), f"templates/{partial} is missing")
    assert not (tmp_path / "out").exists()


def test_every_part_has_its_partial():
    """Every part listed in pipeline/document.py has its template (the check passes on the repository)."""
    document.check_templates()


@pytest.mark.parametrize("seed", [str(2**64), str(2**64 - 1), str(seeds.SEED_MAX + 1)])
def test_seeds_beyond_the_used_range_are_refused(tmp_path, seed):
    """Seeds from 2^32 - 63 up (whose streams would repeat another seed's) are a one-line error."""
    assert_one_line_error(CliRunner().invoke(reproduce.cli, ["--only", "sup", "--seed", seed, "--out", str(tmp_path / "o")]),
                          "--seed")


def test_every_stream_offset_stays_below_the_seed_margin():
    """Each module's own generators (seed + stream to seed + stream + 3) stay within seeds.STREAMS of the seed."""
    for name in MODULES:
        stream = getattr(section_module(name).Config(), "stream", 0)
        assert stream + 3 < seeds.STREAMS, name


MALFORMED = {
    "the entry is a str": lambda e: "a string",
    "its 'metrics' is missing": lambda e: {k: v for k, v in e.items() if k != "metrics"},
    "its 'figures' is missing": lambda e: {k: v for k, v in e.items() if k != "figures"},
    "its checkpoint is not a record": lambda e: {**e, "checkpoint": {"file": e["checkpoint"]["file"]}},
    "its figure 'curves' is not a record": lambda e: {**e, "figures": {"curves": {**e["figures"]["curves"], "file": "/etc/x"}}},
}


def test_malformed_registry_entries_are_stale_with_their_reason_and_force_repairs_them(copied, tiny_data):
    """Entries of the wrong shape are listed as stale with the reason (not a traceback), and --force rewrites them."""
    entry = load(copied)["sections"]["sup"]
    for why, change in MALFORMED.items():
        rewrite(copied, lambda data: data["sections"].update(sup=change(entry)))
        listed = smoke(tiny_data, copied, "--list")
        assert listed.exit_code == 0 and states(listed)["sup"] == "stale", listed.output
        assert f"why: registry entry unusable: {why}" in listed.output
    repaired = smoke(tiny_data, copied, "--only", "sup", "--force")
    assert repaired.exit_code == 0, repaired.output
    assert states(smoke(tiny_data, copied, "--list"))["sup"] == "fresh"


@pytest.mark.parametrize("blocked", ["figures", "checkpoints"])
def test_unwritable_figures_or_checkpoint_folder_is_one_line_before_training(tiny_data, tmp_path, blocked):
    """figures/ or the checkpoint folder that cannot be created is a one-line error, not a crash after training."""
    out, blocker = tmp_path / "out", tmp_path / "a-file"
    out.mkdir()
    blocker.write_text("a file, not a folder")
    if blocked == "figures":
        (out / "figures").symlink_to(blocker / "figures")
    result = CliRunner().invoke(reproduce.cli, ["--smoke", "--only", "sup", "--data-dir", str(tiny_data), "--out", str(out),
                                                "--checkpoints", str(blocker / "ckpt" if blocked == "checkpoints" else tmp_path / "c")])
    assert_one_line_error(result, "cannot write to")
    assert not (out / "results.json").exists()


def test_results_json_that_is_a_folder_is_one_line(tiny_data, tmp_path):
    """results.json replaced by a folder is a one-line error for a run and for --list."""
    (tmp_path / "out" / "results.json").mkdir(parents=True)
    for args in (["--only", "sup"], ["--list"]):
        assert_one_line_error(smoke(tiny_data, tmp_path / "out", *args), "cannot read", "results.json")


def test_checkpoint_replaced_by_a_folder_is_one_line_before_training(copied, tiny_data):
    """A folder where the recorded checkpoint should be is named in one line, and nothing is recomputed."""
    path = copied.parent / "report-ckpt" / load(copied)["sections"]["q1"]["checkpoint"]["file"]
    path.unlink()
    path.mkdir()
    before = (copied / "results.json").read_bytes()
    assert_one_line_error(smoke(tiny_data, copied, "--only", "q1"), "is a folder, not a file")
    assert (copied / "results.json").read_bytes() == before


def test_checkpoint_of_another_section_is_recomputed(copied, tiny_data):
    """A checkpoint whose hash matches but which holds another section's artifacts is caught by its keys and recomputed."""
    sections, ckpt = load(copied)["sections"], copied.parent / "report-ckpt"
    shutil.copyfile(ckpt / sections["sup"]["checkpoint"]["file"], ckpt / sections["q1"]["checkpoint"]["file"])
    rewrite(copied, lambda data: data["sections"]["q1"]["checkpoint"].update(sha256=sections["sup"]["checkpoint"]["sha256"]))
    result = smoke(tiny_data, copied, "--only", "q2", "--force")
    assert result.exit_code == 0, result.output
    assert "holds section sup's artifacts, not q1's; recomputing it" in result.output


def test_missing_fonts_are_named_with_their_package(monkeypatch):
    """With no fonts installed, the check names the package to install instead of letting Pango crash."""
    conf = Path(os.environ.get("TMPDIR", "/tmp")) / "no-fonts.conf"
    conf.write_text('<?xml version="1.0"?><fontconfig><dir>/nonexistent</dir></fontconfig>')
    monkeypatch.setenv("FONTCONFIG_FILE", str(conf))
    with pytest.raises(typeset.RenderError, match="DejaVu Serif Book is not installed .*apt-get install fonts-dejavu-core"):
        typeset.check_fonts()


def test_a_missing_math_font_is_an_error_not_a_fallback(monkeypatch):
    """A missing face (here the math font under another name) is an error naming its package."""
    monkeypatch.setattr(typeset, "FONTS", (*typeset.FONTS[:-1], ("No Such Math", "Regular", "fonts-dejavu-extra")))
    with pytest.raises(typeset.RenderError, match="No Such Math Regular is not installed.*fonts-dejavu-extra"):
        typeset.check_fonts()


# ------------------------------------------------------------------ 5. smaller things
def test_outputs_follow_the_umask(first_run):
    """results.json, figures, PDFs and README are written with the user's umask, not 0600."""
    out, _ = first_run
    mode = registry.file_mode()
    for path in (out / "results.json", out / "report.pdf", out / "README.md", next((out / "figures").iterdir())):
        assert stat.S_IMODE(path.stat().st_mode) == mode, path


def test_list_and_verify_write_nothing_in_the_output_folder(copied, tiny_data, monkeypatch):
    """--list and --verify never create or check-write anything in the output folder (so a read-only one works)."""
    def refuse(folder):
        raise AssertionError(f"tried to write in {folder}")
    monkeypatch.setattr(reproduce, "writable", refuse)
    before = sorted(p.relative_to(copied) for p in copied.rglob("*"))
    assert smoke(tiny_data, copied, "--list").exit_code == 0
    assert smoke(tiny_data, copied, "--verify", "--only", "sup").exit_code == 0
    assert sorted(p.relative_to(copied) for p in copied.rglob("*")) == before


def test_list_of_an_absent_folder_creates_nothing(tmp_path):
    """--list on a folder that does not exist lists no results and does not create it."""
    result = CliRunner().invoke(reproduce.cli, ["--list", "--out", str(tmp_path / "absent")])
    assert result.exit_code == 0 and not (tmp_path / "absent").exists()


def test_early_ctrl_c_exits_130(monkeypatch, tmp_path):
    """SIGINT while the options are still being resolved exits 130 with one line, like a late one."""
    def interrupted(*args):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
    monkeypatch.setattr(reproduce, "options", interrupted)
    result = CliRunner().invoke(reproduce.cli, ["--only", "sup", "--out", str(tmp_path)])
    assert result.exit_code == 130 and "interrupted by SIGINT before anything was written" in result.stderr


def test_keyboard_interrupt_before_the_handlers_exits_130(monkeypatch):
    """A Ctrl-C that click sees (before the signal handlers are installed) also exits 130."""
    def interrupted(only):
        raise KeyboardInterrupt
    monkeypatch.setattr(reproduce, "parse_sections", interrupted)
    with pytest.raises(SystemExit) as exit_:
        reproduce.cli.main(["--list"])
    assert exit_.value.code == 130


def test_interrupt_during_verify_says_the_registry_is_untouched(copied, tiny_data, monkeypatch):
    """Ctrl-C during --verify says that the recorded registry was only read (not that sections were saved)."""
    from pipeline import verify
    def interrupted(opts, selected):
        raise interrupts.Interrupted(signal.SIGINT)
    monkeypatch.setattr(verify, "verify", interrupted)
    result = smoke(tiny_data, copied, "--verify", "--only", "sup")
    assert result.exit_code == 130
    assert "verification stopped" in result.stderr and "finished sections are saved" not in result.stderr


def test_raw_file_replaced_by_a_folder_is_named(tmp_path, monkeypatch):
    """A folder where a raw MNIST file belongs is reported as a folder, not as a failed download."""
    from experiments.lib import data as mnist
    monkeypatch.setattr(mnist, "RAW_MD5", dict(write_mnist(tmp_path / "data")))
    raw = tmp_path / "data" / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    raw.unlink()
    raw.mkdir()
    assert_one_line_error(smoke(tmp_path / "data", tmp_path / "out", "--only", "sup"), "is a folder, not the raw MNIST file")
    assert not (tmp_path / "out").exists()


def test_default_data_folder_is_in_the_repository(monkeypatch, tmp_path):
    """Without --data-dir or MNIST_DATA_DIR the data folder is data/ in the repository, wherever the command runs."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MNIST_DATA_DIR", raising=False)
    opts = reproduce.options(None, None, None, "cpu", 0, 1, 1, True, False)
    assert opts.data_dir == ROOT / "data"


def test_refused_device_creates_no_output_folder(tmp_path, monkeypatch):
    """An argument refused after parsing (--device cuda without CUDA) leaves no empty output folder behind."""
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert_one_line_error(CliRunner().invoke(reproduce.cli, ["--only", "sup", "--device", "cuda", "--out", str(tmp_path / "o")]))
    assert not (tmp_path / "o").exists()


def test_no_file_points_at_the_course_folder_layout():
    """No README, template or module header refers to ../shared/brief/, which a user's clone does not have."""
    files = [ROOT / "README.md", ROOT / "reproduce.py",
             *[p for d in ("experiments", "pipeline", "templates") for p in (ROOT / d).rglob("*") if p.is_file()
               and p.suffix in (".py", ".j2", ".md")]]
    assert not [p for p in files if "shared/brief" in p.read_text()]


@pytest.mark.parametrize("text, why", [
    ('{"sections": {}, "provenance": "x"}', "'provenance' or 'full_run' is not an object"),
    ('{"sections": {"sup": {"metrics": {"test_acc": NaN}}}}', "NaN is not a number JSON allows"),
])
def test_registry_with_nan_or_a_non_object_provenance_is_corrupt(tmp_path, text, why):
    """A hand-edited registry with NaN (which the pipeline never writes) or a non-object provenance is corrupt, not rendered."""
    (tmp_path / "results.json").write_text(text)
    with pytest.raises(registry.RegistryError, match=why):
        Registry(tmp_path / "results.json")


@pytest.mark.parametrize("out", [".", "templates"])
def test_the_repository_itself_is_no_output_folder(out):
    """--out . (or a source folder) is refused: rendering there would replace the repository's README.md."""
    assert_one_line_error(CliRunner().invoke(reproduce.cli, ["--render", "--out", str(ROOT / out)]), "source folders")
