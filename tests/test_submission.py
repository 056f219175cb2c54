# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""The submission: sup_classification.py as the course's skeleton filled in, and the zip of section 4.3.3."""
from __future__ import annotations

import ast
import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

import reproduce
from conftest import ROOT, smoke
from experiments.lib import data as mnist
from pipeline import document, submission

SUP = ROOT / "experiments" / "brief" / "sup_classification.py"
ALLOWED = {"torch", "torchvision", "numpy", "matplotlib"}  # brief, section 4.1, besides the standard library


def test_sup_imports_only_what_the_brief_allows():
    """sup_classification.py imports torch, torchvision, numpy, matplotlib and the standard library only."""
    imported = set()
    for node in ast.walk(ast.parse(SUP.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "a relative import"
            imported.add(node.module.split(".")[0])
    assert imported - ALLOWED - set(sys.stdlib_module_names) == set()
    assert {"torch", "matplotlib"} <= imported


def alone(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """sup_classification.py copied by itself into an empty folder and run there, isolated from this package."""
    folder = tmp_path / "alone"
    folder.mkdir(exist_ok=True)
    shutil.copy(SUP, folder)
    return subprocess.run([sys.executable, "-I", "sup_classification.py", *args], cwd=folder, capture_output=True,
                          text=True, timeout=600)


def test_sup_help_runs_without_the_package(tmp_path):
    """`sup_classification.py --help` works in a folder holding nothing else."""
    result = alone(tmp_path, "--help")
    assert result.returncode == 0, result.stderr
    assert "--data-dir" in result.stdout


def test_sup_alone_gives_the_pipelines_numbers(tiny_data, tmp_path):
    """Every number of a smoke run of the file on its own equals that of `reproduce.py --only sup` on the same data."""
    assert smoke(tiny_data, tmp_path / "out", "--only", "sup", "--jobs", "1").exit_code == 0
    piped = json.loads((tmp_path / "out" / "results.json").read_text())["sections"]["sup"]["metrics"]
    result = alone(tmp_path, "--smoke", "--data-dir", str(tiny_data), "--out", str(tmp_path / "alone-out"))
    assert result.returncode == 0, result.stderr
    own = json.loads((tmp_path / "alone-out" / "sup_metrics.json").read_text())["metrics"]
    assert (tmp_path / "alone-out" / "sup_curves.png").is_file()
    for metrics in (piped, own):
        metrics.pop("timing")
    assert own == piped


# ---------------------------------------------------------------- the zip
def author_file(tmp_path: Path, name: str, username: str) -> Path:
    """A copy of author.toml with this name and username."""
    text = (ROOT / "author.toml").read_text()
    lines = [f'name = "{name}"' if line.startswith("name =") else f'username = "{username}"'
             if line.startswith("username =") else line for line in text.splitlines()]
    path = tmp_path / f"author-{username or 'none'}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def rendered(tiny_root, tmp_path_factory):
    """A smoke run of sup on the tiny data, rendered for an author with a name: (output folder, author file)."""
    root, sums = tiny_root
    base = tmp_path_factory.mktemp("submission")
    named = author_file(base, "Ada Lovelace", "ada")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mnist, "RAW_MD5", dict(sums))
        mp.setattr(document, "AUTHOR_FILE", named)
        result = smoke(root, base / "report", "--only", "sup", "--jobs", "1")
    assert result.exit_code == 0, result.output
    return base / "report", named


def pack(out: Path, target: Path):
    return CliRunner().invoke(reproduce.cli, ["--submission", str(target), "--out", str(out)])


def test_no_name_is_refused_in_one_line_naming_author_toml(rendered, tmp_path, monkeypatch):
    """Without a name, --submission fails with one line that names author.toml, and writes no zip."""
    out, _ = rendered
    monkeypatch.setattr(document, "AUTHOR_FILE", author_file(tmp_path, "", ""))
    result = pack(out, tmp_path / "s.zip")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code != 0 and len(lines) == 1 and "author" in lines[0] and ".toml" in lines[0], result.stderr
    assert not (tmp_path / "s.zip").exists()


def test_two_builds_give_the_same_bytes_and_the_listed_files(rendered, tmp_path, monkeypatch):
    """Two zips of one tree have one SHA-256; they hold the README, report, code and requirements, not the companion."""
    out, named = rendered
    monkeypatch.setattr(document, "AUTHOR_FILE", named)
    results = [pack(out, tmp_path / f"{k}.zip") for k in (1, 2)]
    assert all(r.exit_code == 0 for r in results), results[0].output
    digests = {hashlib.sha256((tmp_path / f"{k}.zip").read_bytes()).hexdigest() for k in (1, 2)}
    assert len(digests) == 1
    names = zipfile.ZipFile(tmp_path / "1.zip").namelist()
    assert names[:2] == ["README.md", "report.pdf"]
    assert {"experiments/brief/sup_classification.py", "experiments/brief/q1_vae.py", "reproduce.py",
            "requirements.txt", "author.toml"} <= set(names)
    assert not [n for n in names if n.startswith(("experiments/courses", "templates/courses")) or n.endswith((".pt", ".json"))
                or "companion" in n or "__pycache__" in n]
    assert "experiments/brief/sup_classification.py" in results[0].output and "bytes" in results[0].output
    readme = zipfile.ZipFile(tmp_path / "1.zip").read("README.md").decode()
    assert "Ada Lovelace" in readme and "ada" in readme


def test_a_stale_report_is_refused(rendered, tmp_path, monkeypatch):
    """A registry changed after the report was laid out: --submission refuses and says to --render."""
    out, named = rendered
    monkeypatch.setattr(document, "AUTHOR_FILE", named)
    copy = tmp_path / "report"
    shutil.copytree(out, copy)
    registry = json.loads((copy / "results.json").read_text())
    registry["sections"]["sup"]["metrics"]["test_acc"] = 0.5
    (copy / "results.json").write_text(json.dumps(registry))
    result = pack(copy, tmp_path / "s.zip")
    assert result.exit_code != 0 and "stale" in result.stderr and "--render" in result.stderr


def test_a_report_over_budget_is_refused(rendered, tmp_path, monkeypatch):
    """A report longer than the page budget is refused."""
    out, named = rendered
    monkeypatch.setattr(document, "AUTHOR_FILE", named)
    monkeypatch.setattr(submission, "PAGE_BUDGET", 1)
    result = pack(out, tmp_path / "s.zip")
    assert result.exit_code != 0 and "over the brief's budget of 1" in result.stderr


def test_every_code_file_says_it_is_ai_written():
    """Every file that goes into the zip, besides README and report, carries the note of section 4.1.1."""
    assert [path for path in submission.code_files() if submission.NOTE not in (ROOT / path).read_text()] == []


def test_the_unzipped_submission_reruns(rendered, real_data, tmp_path, monkeypatch):
    """Unzipped into an empty folder, the README's command for the brief's questions runs there (smoke sizes)."""
    out, named = rendered
    monkeypatch.setattr(document, "AUTHOR_FILE", named)
    assert pack(out, tmp_path / "s.zip").exit_code == 0
    tree = tmp_path / "unzipped"
    zipfile.ZipFile(tmp_path / "s.zip").extractall(tree)
    command = next(line.split() for line in (tree / "README.md").read_text().splitlines()
                   if line.strip().startswith("python reproduce.py --only"))
    result = subprocess.run([sys.executable, *command[1:], "--smoke", "--jobs", "1", "--data-dir", str(real_data)],
                            cwd=tree, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    rerun = tree / command[command.index("--out") + 1]
    assert set(json.loads((rerun / "results.json").read_text())["sections"]) == {"sup", "q1", "q2", "q3", "q4"}
    assert (rerun / "report.pdf").is_file() and not (rerun / "companion.pdf").exists()
