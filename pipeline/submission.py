# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""The zip that the brief's section 4.3.3 asks for (``reproduce.py --submission ZIP``, ``make submission``).

In it: the README (``templates/submission_README.md.j2``: name, CSE username, what is where, how to
rerun), ``report.pdf``, the filled-in ``experiments/brief/sup_classification.py``, the VAE code and the
code that runs it (``experiments/`` without the companion's ``courses/``, ``pipeline/``, ``reproduce.py``,
the report's templates without the companion's, ``author.toml``) and ``requirements.txt``. Not the
companion, the supplement, the registry, checkpoints, data or caches: unzipped into an empty folder,
the README's commands retrain every section of the report (``pipeline/__init__.py`` drops the courses'
sections where ``experiments/courses/`` is absent).

Refused, in one line: while ``author.toml`` has no name or username; when ``report.pdf`` is not what the
registry, the templates and ``author.toml`` give now (it is laid out again and compared byte for byte);
when the report is over the page budget; when a code file lacks the AI-written note (section 4.1.1).
The same tree gives the same bytes: a fixed order, timestamps and permissions.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

from .cache import ROOT
from . import document
from .document import PAGE_BUDGET, document_pdf, readme_context, render_markdown
from .pdf import iso_date
from .registry import Registry, atomic_write
from .render import source_date_epoch, titles

NOTE = "AI-written code (brief, section 4.1.1)"  # the line every code file in the zip carries
TOP_FILES = ("requirements.txt", "author.toml", "reproduce.py")
LEFT_OUT = ("experiments/courses/", "templates/courses/", "templates/companion.html.j2")  # the companion
STAMP = (1980, 1, 1, 0, 0, 0)  # every member's time: the earliest a zip can hold


class SubmissionError(RuntimeError):
    """The submission cannot be made as things are; the message is one line and says what to do."""


def code_files() -> list[str]:
    """The code, templates and settings that go in, as repository paths in sorted order."""
    found = [*TOP_FILES, *(p.relative_to(ROOT).as_posix() for folder, pattern in
                           (("experiments", "*.py"), ("pipeline", "*.py"), ("templates", "*"))
                           for p in (ROOT / folder).rglob(pattern) if p.is_file() and "__pycache__" not in p.parts)]
    return sorted(path for path in found if not path.startswith(LEFT_OUT))


def contents(out: Path) -> list[tuple[str, bytes]]:
    """(name in the zip, bytes) in the zip's order, after every check; SubmissionError at the first that fails."""
    who = document.author()
    missing = [key for key in ("name", "username") if not who[key].strip()]
    if missing:
        raise SubmissionError(f"{document.AUTHOR_FILE} has no {' and no '.join(missing)}: fill them in, run `python reproduce.py "
                              "--render`, then make the submission again")
    pdf = out / "report.pdf"
    if not pdf.is_file():
        raise SubmissionError(f"{pdf} is missing: run `python reproduce.py --all` (or --render) first")
    registry = Registry(out / "results.json").valid_data()
    epoch, names = source_date_epoch(registry), titles(registry)
    fresh, pages = document_pdf("report", registry, names, out, epoch)
    if pages > PAGE_BUDGET:
        raise SubmissionError(f"the report has {pages} pages, over the brief's budget of {PAGE_BUDGET}: shorten it first")
    if fresh != pdf.read_bytes():
        raise SubmissionError(f"{pdf} is stale: it is not what {out / 'results.json'}, the templates and {document.AUTHOR_FILE.name} "
                              f"give now; run `python reproduce.py --render --out {out}` first")
    readme = render_markdown("submission_README.md.j2", readme_context(registry, names, {"report": pages}, iso_date(epoch)))
    code = [(path, (document.AUTHOR_FILE if path == "author.toml" else ROOT / path).read_bytes()) for path in code_files()]
    unmarked = [path for path, data in code if NOTE.encode() not in data]
    if unmarked:
        raise SubmissionError(f"{unmarked[0]} does not say that it is AI-written (brief, section 4.1.1): add the line "
                              f"'{NOTE}: ...' to it" + (f" and to {len(unmarked) - 1} other file(s)" if len(unmarked) > 1 else ""))
    return [("README.md", readme.encode()), ("report.pdf", fresh), *code]


def zip_bytes(files: list[tuple[str, bytes]]) -> bytes:
    """The files as a zip that depends on nothing but their names, order and bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files:
            info = zipfile.ZipInfo(name, date_time=STAMP)
            info.create_system, info.external_attr = 3, 0o644 << 16  # Unix, rw-r--r--
            archive.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return buffer.getvalue()


def write(out: Path, target: Path) -> list[tuple[str, int]]:
    """Check, then write the zip of ``out``'s report to ``target``; return each member's name and size."""
    files = contents(out)
    atomic_write(target, zip_bytes(files))
    return [(name, len(data)) for name, data in files]
