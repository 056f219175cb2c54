# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""HTML -> PDF bytes with WeasyPrint: figures served from the output folder and checked against their recorded
SHA-256, every error WeasyPrint logs made fatal, and the dates fixed by SOURCE_DATE_EPOCH, so identical input
gives identical bytes wherever the folder lives.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import mimetypes
import os
from contextlib import contextmanager
from pathlib import Path

from weasyprint import HTML
from weasyprint.urls import URLFetcher, URLFetcherResponse

from .typeset import RenderError

FIGURE_BASE = "https://report.invalid/"  # figures/... resolve against this, served from the output folder
logging.getLogger("weasyprint").setLevel(logging.ERROR)
logging.getLogger("fontTools").setLevel(logging.ERROR)


def iso_date(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="seconds")


@contextmanager
def _env_var(name: str, value: str):
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            del os.environ[name]
        else:
            os.environ[name] = old


class FolderFetcher(URLFetcher):
    """Serves the output folder under a fixed base URL, so that the PDF (which names embedded images
    after their URL) does not depend on where the folder lives; a missing figure stops the build.
    ``command`` reruns a section into that folder (``python reproduce.py --out ...``, with ``--smoke`` and
    ``--checkpoints`` where they apply): the advice when a figure is wrong."""

    def __init__(self, folder: Path, figures: dict[str, tuple[str, str | None]] | None = None,
                 command: str | None = None):
        super().__init__(fail_on_errors=True, allowed_protocols={"https", "data"})
        self.folder = folder
        self.figures = figures or {}  # figures/<file> -> (section, recorded SHA-256)
        self.command = command or f"python reproduce.py --out {folder}"

    def rerun(self, section: str) -> str:
        return f"rerun it with `{self.command} --only {section} --force`"

    def fetch(self, url, headers=None):
        if url.startswith(FIGURE_BASE):
            name = url[len(FIGURE_BASE):]
            path, (section, digest) = self.folder / name, self.figures.get(name, ("?", None))
            if not path.is_file():
                state = "not a file" if path.exists() else "missing"
                raise FileNotFoundError(f"figure {name} of section {section} is {state} in {self.folder}; "
                                        f"{self.rerun(section)}")
            data = path.read_bytes()
            if digest and hashlib.sha256(data).hexdigest() != digest:
                raise ValueError(f"figure {name} of section {section} is not the one its numbers were recorded with "
                                 f"(SHA-256 differs); {self.rerun(section)}")
            return URLFetcherResponse(url, data, {"Content-Type": mimetypes.guess_type(path.name)[0]})
        return super().fetch(url, headers)

    def failure(self, record: logging.LogRecord) -> str:
        """What an error WeasyPrint logged (and drew around: an image left out or half drawn) means, naming the
        figure where the record names one."""
        said = record.getMessage()
        said = said if len(said) <= 300 else said[:297] + "..."
        name = next((a[len(FIGURE_BASE):] for a in record.args or () if isinstance(a, str) and a.startswith(FIGURE_BASE)),
                    None)
        if name is None:
            return f"WeasyPrint could not lay out the document whole ({said}); nothing was written"
        section = self.figures.get(name, ("?", None))[0]
        return (f"figure {name} of section {section} could not be drawn ({said}); nothing was written; "
                f"{self.rerun(section)}")


class _Errors(logging.Handler):
    """Collects the errors WeasyPrint logs: each is a part of the PDF it left out or drew only in part."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def pdf_bytes(html: str, folder: Path, epoch: int, figures: dict | None = None,
              command: str | None = None) -> tuple[bytes, int]:
    """The PDF and its page count; identical input gives identical bytes, wherever ``folder`` is. An image or
    SVG that WeasyPrint fails to load or draw (it logs the error and goes on) is a RenderError naming the figure."""
    fetcher, errors, logger = FolderFetcher(folder, figures, command), _Errors(), logging.getLogger("weasyprint")
    logger.addHandler(errors)
    try:
        with _env_var("SOURCE_DATE_EPOCH", str(epoch)):
            document = HTML(string=html, base_url=FIGURE_BASE, url_fetcher=fetcher).render()
            data = document.write_pdf(pdf_identifier=b"vi-mnist-report")
    finally:
        logger.removeHandler(errors)
    if errors.records:
        raise RenderError(fetcher.failure(errors.records[0]))
    return data, len(document.pages)
