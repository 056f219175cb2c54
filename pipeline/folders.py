# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""Which folders a run may own: where ``--out`` and ``--checkpoints`` may point (no torch, no writes).

A run replaces README.md, results.json, the PDFs and figures/ in its output folder, and deletes files
in its checkpoint folder; so neither may be the repository, a folder above it, a source folder, the
inside of the committed ``report/`` (``report/`` itself is the default output folder), or a folder that
already holds files of someone else's (one with no mark of this package: ``results.json`` or ``.lock``
in an output folder, ``.outputs`` or ``.lock`` in a checkpoint folder). Each path is judged both as
given and with its symbolic links resolved, and a ``figures/`` that is a symbolic link is refused:
nothing is written through a link out of the folder.
"""
from __future__ import annotations

import os
from pathlib import Path

from .cache import ROOT

SOURCES = (".git", ".venv", "bench", "experiments", "pipeline", "templates", "tests")  # nothing is written in these
REPORT = "report"  # the committed output folder: the default --out, and nothing inside it
OUTPUT_MARKS = ("results.json", ".lock")  # a folder holding one of these is an output folder of this package
CHECKPOINT_MARKS = (".outputs", ".lock")


def forms(path: Path) -> list[Path]:
    """The path made absolute as written, and with its symbolic links resolved."""
    return list(dict.fromkeys((Path(os.path.abspath(path)), Path(path).resolve())))


def place_problem(path: Path, what: str, report_itself: bool) -> str | None:
    """Why ``path`` is no folder a run may own (None when it may): the repository, a folder above it, a
    source folder or inside one, or (except ``report/`` itself when ``report_itself``) inside report/."""
    root = ROOT.resolve()
    for p in forms(path):
        if p == root or p in root.parents:
            return (f"{what} {path} is the repository or a folder above it, whose files the run would replace (nor may "
                    "it be one of the source folders or inside report/); use report/ (the default) or a folder under scratch/")
        for source in SOURCES:
            if p == root / source or root / source in p.parents:
                return f"{what} {path} is in one of the repository's source folders ({source}/); use a folder under scratch/"
        if root / REPORT in p.parents or (p == root / REPORT and not report_itself):
            return (f"{what} {path} is " + ("inside the committed report/ folder; use report/ itself" if report_itself else
                    "the committed report/ folder or inside it; use the default") + " or a folder under scratch/")
    return None


def foreign_files(folder: Path, marks: tuple[str, ...]) -> bool:
    """Whether ``folder`` exists, holds entries, and none of the marks a folder of this package has."""
    try:
        with os.scandir(folder) as entries:
            names = {entry.name for entry in entries}
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return False  # unreadable: the writability check says so in its own words
    return bool(names) and not names & set(marks)


def output_problem(out: Path, smoke: bool) -> str | None:
    """Why ``out`` may not be this run's output folder (None when it may)."""
    if smoke and any(p == ROOT.resolve() / REPORT for p in forms(out)):
        return "--smoke never writes to report/: its numbers answer nothing; use another --out"
    problem = place_problem(out, "--out", report_itself=True)
    if problem:
        return problem
    if (Path(out) / "figures").is_symlink():
        return f"cannot write to {Path(out) / 'figures'}: it is a symbolic link, and a run writes only inside {out}"
    if foreign_files(out, OUTPUT_MARKS):
        return (f"--out {out} already holds files and no results.json: it is not an output folder of this package, "
                "and the run would replace its README.md; use a new or empty folder")
    return None


def checkpoint_problem(folder: Path) -> str | None:
    """Why ``folder`` may not hold this run's checkpoints (None when it may)."""
    problem = place_problem(folder, "--checkpoints", report_itself=False)
    if problem:
        return problem
    if foreign_files(folder, CHECKPOINT_MARKS):
        return (f"--checkpoints {folder} already holds files and no .outputs: it is not a checkpoint folder of this "
                "package; use a new or empty folder")
    return None
