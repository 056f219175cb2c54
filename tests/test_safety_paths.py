"""Failing safely, second round: where a run may write, what pruning may delete, checkpoints as reproducible
bytes and reused when absent, and registry values checked on read."""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
import torch

from conftest import smoke
from pipeline import checkpoints, registry, typeset
from pipeline.registry import Registry, locked
from test_cli import assert_one_line_error, invoke
from test_render import load
from test_safety import rewrite, states

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------ where a run may write
@pytest.mark.parametrize("out", ["/", "..", ".git/x", "experiments/x", "tests", "report/figures", "report/x/y"])
def test_out_is_never_above_the_repository_in_a_source_folder_or_inside_report(out, tmp_path):
    """--out /, a folder above the repository, one in .git/, experiments/ or tests/, or inside report/ is refused in one line."""
    assert_one_line_error(invoke("--list", "--out", str(ROOT / out), "--checkpoints", str(tmp_path / "c")), "--out")


def test_smoke_never_writes_inside_report(tmp_path):
    """--smoke --out report/figures is refused like --smoke --out report."""
    assert_one_line_error(invoke("--smoke", "--list", "--out", str(ROOT / "report" / "figures")), "report/")


@pytest.mark.parametrize("where", [".git", "report", "report/figures", "experiments/lib"])
def test_checkpoints_are_never_in_a_source_folder_or_in_report(where, tmp_path):
    """--checkpoints in .git/, experiments/ or report/ (itself included) is refused in one line."""
    result = invoke("--list", "--out", str(tmp_path / "out"), "--checkpoints", str(ROOT / where / "ckpt"))
    assert_one_line_error(result, "--checkpoints")


@pytest.mark.parametrize("flag", ["--out", "--checkpoints"])
def test_a_folder_of_someone_elses_files_is_refused(flag, tmp_path):
    """An existing folder holding files but no mark of this package (results.json, .outputs, .lock) is refused."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "README.md").write_text("my notes\n")
    folders = {"--out": str(tmp_path / "out"), "--checkpoints": str(tmp_path / "ckpt"), flag: str(tmp_path / "mine")}
    assert_one_line_error(invoke("--list", *[a for item in folders.items() for a in item]), "already holds files")


def test_a_symlinked_figures_folder_is_refused(tmp_path):
    """out/figures that is a symbolic link to a folder elsewhere is refused: nothing is written through it."""
    (tmp_path / "out").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out" / "figures").symlink_to(tmp_path / "elsewhere")
    assert_one_line_error(invoke("--render", "--out", str(tmp_path / "out")), "symbolic link")
    assert not list((tmp_path / "elsewhere").iterdir())


def test_the_lock_deletes_no_temporary_file_through_a_symlinked_subfolder(tmp_path):
    """A subfolder of the output folder that links elsewhere keeps its .tmp files when the lock is taken."""
    (tmp_path / "elsewhere").mkdir()
    victim = tmp_path / "elsewhere" / ".precious.tmp"
    victim.write_text("keep")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "link").symlink_to(tmp_path / "elsewhere")
    with locked(tmp_path / "out", lambda message: None):
        pass
    assert victim.read_text() == "keep"


def test_a_lock_that_is_a_symbolic_link_is_an_error_and_creates_nothing(tmp_path):
    """.lock linking to a path elsewhere is a one-line RegistryError; the link's target is not created."""
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".lock").symlink_to(tmp_path / "target")
    with pytest.raises(registry.RegistryError, match="symbolic link"):
        with locked(tmp_path / "out", lambda message: None):
            pass
    assert not (tmp_path / "target").exists()


def test_prune_deletes_only_checkpoints_the_package_wrote(tmp_path):
    """Pruning sup keeps a user's sup-mybest.pt, a file named like a checkpoint that holds something else, and
    a link; it deletes the older checkpoint it wrote."""
    store = checkpoints.CheckpointStore(tmp_path / "ckpt", tmp_path / "out" / "results.json")
    old, new = (store.encode("sup", key, {"w": torch.zeros(1)}) for key in ("1" * 64, "2" * 64))
    for payload, record in (old, new):
        store.write(payload, record)
    Registry(store.registry).write(*Registry(store.registry).prepare("sup", {"checkpoint": new[1]}, {}))
    torch.save({"w": torch.ones(1)}, store.folder / "sup-mybest.pt")
    torch.save({"section": "q1", "cache_key": "3" * 64, "artifacts": {}}, store.folder / "sup-3333333333333333.pt")
    (store.folder / "sup-link.pt").symlink_to(store.folder / old[1]["file"])
    store.prune("sup", new[1])
    assert sorted(p.name for p in store.folder.glob("*.pt")) == [
        "sup-2222222222222222.pt", "sup-3333333333333333.pt", "sup-link.pt", "sup-mybest.pt"]


# ------------------------------------------------------------------ checkpoints: reproducible, reused when absent
def test_recomputed_checkpoints_are_the_same_bytes(copied, tiny_data):
    """Every section that keeps a checkpoint, recomputed with the same code, seed and machine, writes the same
    bytes (no wall-clock inside), so the sections that read it (extra) stay fresh."""
    before = {n: e["checkpoint"] for n, e in load(copied)["sections"].items() if e["checkpoint"]}
    assert {"extra_beta", "extra_range", "q1", "sup"} <= set(before)
    rerun = smoke(tiny_data, copied, "--only", ",".join(before), "--force", "--jobs", "1")
    assert rerun.exit_code == 0, rerun.output
    assert {n: load(copied)["sections"][n]["checkpoint"] for n in before} == before
    assert set(states(smoke(tiny_data, copied, "--list")).values()) == {"fresh"}


def test_fresh_sections_without_checkpoints_are_reused_unless_a_stale_one_needs_them(copied, tiny_data):
    """With every checkpoint file gone (a fresh clone) and q2 stale, --all recomputes q1 (q2 needs its weights)
    and q2, and reuses every other section; q1's checkpoint comes back with its recorded bytes."""
    ckpt = copied.parent / "report-ckpt"
    for path in ckpt.glob("*.pt"):
        path.unlink()
    figure = copied / load(copied)["sections"]["q2"]["figures"]["samples"]["file"]
    figure.write_bytes(figure.read_bytes() + b"\n")
    recorded = load(copied)["sections"]["q1"]["checkpoint"]
    result = smoke(tiny_data, copied, "--all", "--jobs", "1")
    assert result.exit_code == 0, result.output
    computed = {line.split("]")[0][1:] for line in result.output.splitlines() if "] done in" in line}
    assert computed == {"q1", "q2"}, result.output
    assert "[q1] needed by q2, running it first" in result.output
    assert load(copied)["sections"]["q1"]["checkpoint"] == recorded and (ckpt / recorded["file"]).is_file()


# ------------------------------------------------------------------ registry values
@pytest.mark.parametrize("value, why", [("1e400", "metrics.test_acc is not a finite number"),
                                        (json.dumps("x" * 2000), "metrics.test_acc is a text of 2000 characters"),
                                        ("1" + "0" * 400, "metrics.test_acc is beyond the range of a float")])
def test_a_registry_value_that_is_not_a_finite_number_or_a_short_text_makes_its_entry_stale(copied, tiny_data, value, why):
    """sup's test accuracy hand-edited to 1e400, a 2,000-character text or a 401-digit integer: --list shows sup
    stale with a short reason, --render and a commit of another section work, no traceback."""
    text = (copied / "results.json").read_text()
    accuracy = json.dumps(load(copied)["sections"]["sup"]["metrics"]["test_acc"])
    assert text.count(f'"test_acc": {accuracy}') == 1
    (copied / "results.json").write_text(text.replace(f'"test_acc": {accuracy}', f'"test_acc": {value}'))
    listed = smoke(tiny_data, copied, "--list")
    assert listed.exit_code == 0 and states(listed)["sup"] == "stale", listed.output
    reason = next(line for line in listed.output.splitlines() if "why: registry entry unusable" in line)
    assert why in reason and len(reason) < 200
    if value == "1e400":  # which the report printed as "inf%"
        assert invoke("--render", "--out", str(copied)).exit_code == 0
    committed = smoke(tiny_data, copied, "--only", "q2", "--force", "--jobs", "1")
    assert committed.exit_code == 0 and "Traceback" not in committed.output, committed.output


@pytest.mark.parametrize("value", [True, None, "x" * 2000, float("inf")])
def test_a_number_filter_given_anything_but_a_finite_number_is_one_short_line(value):
    """|num and |pct on true (which would print 100.00%), null, a long text or infinity raise a short RenderError."""
    for show in (typeset.num, typeset.pct, typeset.format_percent):
        with pytest.raises(typeset.RenderError) as err:
            show(value)
        assert len(str(err.value)) < 200 and "\n" not in str(err.value)


def test_a_fifo_as_the_registry_is_one_line_and_never_blocks(tmp_path):
    """results.json that is a named pipe is a RegistryError at once, not a read that waits for a writer."""
    os.mkfifo(tmp_path / "results.json")
    outcome = []

    def read():
        try:
            registry.read(tmp_path / "results.json")
        except registry.RegistryError as err:
            outcome.append(str(err))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    assert outcome and "not a regular file" in outcome[0]


def test_a_registry_with_a_non_finite_spread_is_corrupt(copied):
    """A top-level record (the spread) holding 1e400 makes the registry corrupt, in one line, never infinity."""
    rewrite(copied, lambda data: data.update(spread={"sd": 1}))
    (copied / "results.json").write_text((copied / "results.json").read_text().replace('"sd": 1', '"sd": 1e400'))
    with pytest.raises(registry.RegistryError, match="spread.sd is not a finite number"):
        Registry(copied / "results.json")


@pytest.mark.parametrize("value", ["true", "null"])
def test_render_of_a_non_number_where_the_report_prints_one_is_one_line(copied, value):
    """sup's test accuracy hand-edited to true (once printed as 100.00%) or null (once a TypeError traceback):
    --render stops with one short line saying to rerun the section."""
    rewrite(copied, lambda data: data["sections"]["sup"]["metrics"].update(test_acc=json.loads(value)))
    assert_one_line_error(invoke("--render", "--out", str(copied)), "a number was expected", "--force")
