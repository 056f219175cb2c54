# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""Registry -> report.pdf, supplement.pdf, companion.pdf and the READMEs: the documents laid out side
by side in worker processes (``document`` builds one; ``typeset`` prints numbers and math).

``check_inputs`` runs before any training: author.toml, every template and part, and the fonts.
The PDFs' dates come from SOURCE_DATE_EPOCH, which defaults to the time of the newest result in the
registry, so the same registry gives the same bytes.
"""
from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import sys
from pathlib import Path

from . import SECTIONS, section_module
from .document import (DOCUMENTS, PAGE_BUDGET, author, check_templates, document_pdf, readme_context,
                       render_markdown)
from .interrupts import critical
from .pdf import iso_date
from .registry import atomic_write_all
from .typeset import RenderError, check_fonts
from .workers import WorkerDied, Workers


def check_inputs() -> None:
    """What rendering needs besides the registry, checked before any section runs."""
    author()
    check_templates()
    check_fonts()


def output_files(out: Path, readme: Path | None = None) -> list[Path]:
    """The files ``build`` writes: the PDFs and README.md in ``out``, and ``readme`` (the repository's) if given."""
    return [*(out / f"{name}.pdf" for name in DOCUMENTS), out / "README.md", *([readme] if readme else [])]


def check_outputs(out: Path, readme: Path | None = None) -> None:
    """RenderError, before any training, for an output file that exists and is not a file (a folder named report.pdf)."""
    for path in output_files(out, readme):
        if (path.exists() or path.is_symlink()) and not path.is_file():
            raise RenderError(f"cannot write {path}: it exists and is not a file; move it away")


def source_date_epoch(registry: dict) -> int:
    """SOURCE_DATE_EPOCH if set, else the finishing time of the newest section (0 with none)."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    times = [e["finished_at"] for e in registry.get("sections", {}).values() if e.get("finished_at")]
    return int(dt.datetime.fromisoformat(max(times)).timestamp()) if times else 0


def titles(registry: dict) -> dict[str, str]:
    """Each section, in the report's order, under the title it was recorded with (no torch imported for those)
    or, without results, its module's."""
    recorded = registry.get("sections", {})
    return {name: recorded[name]["title"] if name in recorded else section_module(name).TITLE for name in SECTIONS}


LAYOUT_ORDER = ("companion", "supplement", "report")  # the slowest to lay out first (measured), the quickest fills in last


def build(registry: dict, titles: dict[str, str], out: Path, readme: Path | None = None, jobs: int = 1,
          command: str | None = None) -> dict[str, int]:
    """Write report.pdf (page budget enforced), supplement.pdf, companion.pdf and README.md files; return page counts.

    With ``jobs`` > 1 the documents are laid out side by side in that many worker processes (WeasyPrint is
    single-threaded), the longest first; forked on Linux, so that a worker starts with this process's imports
    and compiled templates, and spawned elsewhere. Nothing is written until every document is made, and then
    all files or none (a full disk fails before any is replaced; signals wait for the renames). ``command``
    reruns a section into ``out`` (the advice when a figure is wrong)."""
    epoch = source_date_epoch(registry)
    args = (registry, titles, out, epoch, command)
    made = laid_out(args, jobs) if jobs > 1 else {name: document_pdf(name, *args) for name in DOCUMENTS}
    pages = {name: made[name][1] for name in DOCUMENTS}
    if pages["report"] > PAGE_BUDGET:
        raise RenderError(f"the report has {pages['report']} pages, over the brief's budget of {PAGE_BUDGET}; "
                          "nothing was written: shorten a section or move material to the supplement")
    ctx = readme_context(registry, titles, pages, iso_date(epoch))
    contents = [*(made[name][0] for name in DOCUMENTS), render_markdown("submission_README.md.j2", ctx).encode(),
                *([render_markdown("README.md.j2", ctx).encode()] if readme else [])]
    with critical():
        atomic_write_all(dict(zip(output_files(out, readme), contents)))
    return pages


def laid_out(args: tuple, jobs: int) -> dict[str, tuple[bytes, int]]:
    """Every document of DOCUMENTS laid out in ``jobs`` workers; the first failure (a RenderError, or a worker
    that died, named by its document) stops the others at once."""
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with Workers(min(jobs, len(DOCUMENTS)), context) as workers:
        futures = {name: workers.submit(f"{name}.pdf", document_pdf, name, *args) for name in LAYOUT_ORDER if name in DOCUMENTS}
        pending = set(futures.values())
        while pending:
            for future in workers.wait(pending):
                pending.discard(future)
                try:
                    future.result()
                except WorkerDied as err:
                    raise RenderError(f"{err}; nothing was written") from None
    return {name: future.result() for name, future in futures.items()}
