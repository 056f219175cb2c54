"""Registry -> Jinja2 -> HTML -> WeasyPrint PDF, and the READMEs.

Math is typeset by ziamath, a pure-Python TeX-to-SVG renderer: unlike matplotlib's mathtext it
handles ``\\begin{aligned}``, and unlike MathJax or KaTeX it needs no JavaScript engine, which
WeasyPrint does not have. It draws with DejaVu Math TeX Gyre, the math companion of the DejaVu
Serif text face, so text and math share one family.

Output is deterministic: figures and tables are numbered in a first pass, the PDF's identifier is
fixed, and its dates (and fontTools' font-subset timestamps) come from SOURCE_DATE_EPOCH, which
defaults to the time of the newest result in the registry.
"""
from __future__ import annotations

import base64
import datetime as dt
import functools
import logging
import mimetypes
import os
import tomllib
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jinja2
import ziamath
from markupsafe import Markup, escape
from weasyprint import HTML
from weasyprint.urls import FatalURLFetchingError, URLFetcher, URLFetcherResponse

from .cache import ROOT
from .registry import atomic_write

TEMPLATES = ROOT / "templates"
AUTHOR_FILE = ROOT / "author.toml"
PAGE_BUDGET = 5  # brief, section 4.3.1
MATH_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuMathTeXGyre.ttf")
MATH_PX = 12.5  # math size in CSS px, matching the 9.4pt body text
FIGURE_BASE = "https://report.invalid/"  # figures/... resolve against this, served from the output folder
REPORT_PARTS = ("sup", "derivations", "q1", "q2", "q3", "q4", "extra", "ai_tools")
# the companion (report/companion.pdf): what four other courses ask of the same VAE (brief/peers.md),
# each part a section rendered by templates/companion/<part>.html.j2, in the order of peers.md
COMPANION_PARTS = ("tor_vae", "tor_posterior", "tor_grad", "stan_vae")
# its opening table: one partial templates/companion/map_<course>.html.j2 of rows per course, in this order
COMPANION_COURSES = {"toronto": "Toronto CSC412/2506", "dtu": "DTU 02460", "eindhoven": "Eindhoven 2AMU20",
                     "stanford": "Stanford STATS305C"}

logging.getLogger("weasyprint").setLevel(logging.ERROR)
logging.getLogger("fontTools").setLevel(logging.ERROR)


class RenderError(RuntimeError):
    """The report cannot be built as required (for example, it is over the page budget)."""


# ---------------------------------------------------------------- numbers and math
def format_number(x: float, digits: int = 2) -> str:
    """Fixed decimals, thousands grouped from 10,000 up, a true minus sign."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise RenderError(f"not a number: {x!r}")
    text = f"{x:,.{digits}f}" if abs(x) >= 10000 else f"{x:.{digits}f}"
    return text.replace("-", "\u2212")


def num(x: float, digits: int = 2) -> Markup:
    return Markup(f'<span class="n">{format_number(x, digits)}</span>')


def pct(x: float, digits: int = 2) -> Markup:
    """A fraction printed as a percentage."""
    return Markup(f'<span class="n pct">{format_number(100 * x, digits)}%</span>')


@functools.lru_cache(maxsize=None)
def _math_img(tex: str, display: bool) -> str:
    font = str(MATH_FONT) if MATH_FONT.exists() else None
    expr = ziamath.Latex(tex, size=MATH_PX * (1.05 if display else 1.0), font=font, inline=not display)
    width, height = expr.getsize()
    margin = expr.margin
    data = base64.b64encode(expr.svg().encode()).decode()
    # the SVG's box extends ``margin`` beyond the glyphs; its baseline is -ymin above the box bottom
    style = (f"width:{width + 2 * margin:.2f}px;height:{height + 2 * margin:.2f}px;"
             f"vertical-align:{expr.getyofst() - margin:.2f}px")
    return f'<img class="math" alt="{escape(tex)}" style="{style}" src="data:image/svg+xml;base64,{data}">'


def math(tex: str) -> Markup:
    return Markup(_math_img(str(tex).strip(), False))


def displaymath(tex: str, tag: str | None = None) -> Markup:
    """A centred equation; ``tag`` (such as "7") is printed at the right margin as "(7)"."""
    number = f'<span class="eqtag">({escape(str(tag))})</span>' if tag else ""
    return Markup(f'<div class="displaymath">{_math_img(str(tex).strip(), True)}{number}</div>')


# ---------------------------------------------------------------- figures, tables, references
class Numbering:
    """Figure and table numbers in order of appearance, after ``prefix`` ("S" in the supplement);
    ``refs`` come from a previous pass."""

    def __init__(self, refs: dict[str, str] | None = None, prefix: str = ""):
        self.refs = refs or {}
        self.prefix = prefix
        self.seen: dict[str, str] = {}

    def number(self, ident: str) -> str:
        if ident not in self.seen:
            kind = ident.split("-")[0]
            self.seen[ident] = f"{self.prefix}{1 + sum(1 for k in self.seen if k.split('-')[0] == kind)}"
        return self.seen[ident]

    def ref(self, ident: str) -> Markup:
        word = {"fig": "Figure", "tab": "Table"}[ident.split("-")[0]]
        return Markup(f'<a class="ref" href="#{ident}">{word}&nbsp;{self.refs.get(ident, "?")}</a>')

    def figure(self, s: dict, name: str, caption: str, width: str = "100%") -> Markup:
        rec = s["figures"][name]
        ident = f"fig-{s['section']}-{name}"
        body = (_grid_html(rec) if rec["kind"] == "png" else f'<img class="plot" src="{escape(rec["file"])}">')
        cap = (f'<figcaption><b>Figure&nbsp;{self.number(ident)}.</b> {caption} '
               f'<span class="src">[{escape(rec["module"])}]</span></figcaption>')
        return Markup(f'<figure id="{ident}" style="width:{width}">{body}{cap}</figure>')

    def table_caption(self, ident: str, caption: str) -> Markup:
        return Markup(f'<caption><b>Table&nbsp;{self.number(ident)}.</b> {caption}</caption>')


def _grid_html(rec: dict) -> str:
    """A pixel-exact digit grid with its row labels beside and column labels above."""
    cols = "".join(f"<span>{escape(c).replace(chr(10), Markup('<br>'))}</span>" for c in rec["col_labels"])
    rows = "".join(f"<span>{escape(r)}</span>" for r in rec["row_labels"])
    return (f'<div class="digitgrid"><div></div><div class="cols">{cols}</div>'
            f'<div class="rows">{rows}</div><div><img class="digits" src="{escape(rec["file"])}"></div></div>')


# ---------------------------------------------------------------- templates
def author() -> dict[str, Any]:
    with open(AUTHOR_FILE, "rb") as f:
        return tomllib.load(f)


def environment(markdown: bool = False) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                             autoescape=not markdown, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(num=(lambda x, d=2: format_number(x, d)) if markdown else num,
                       pct=(lambda x, d=2: format_number(100 * x, d) + "%") if markdown else pct,
                       math=math, displaymath=displaymath)
    env.globals["has_template"] = lambda name: name in env.list_templates()
    return env


def context(registry: dict, titles: dict[str, str], **extra) -> dict[str, Any]:
    recorded = registry.get("sections", {})
    # in the order of the report (titles are given in section order), each entry knowing its name
    sections = {name: {**recorded[name], "section": name} for name in titles if name in recorded}
    return {"R": {**registry, "sections": sections}, "S": sections, "titles": titles, "author": author(),
            "page_budget": PAGE_BUDGET, **extra}


def render_html(template: str, ctx: dict[str, Any], prefix: str = "") -> str:
    """Two passes: the first numbers figures and tables, the second resolves references to them."""
    env = environment()
    refs: dict[str, str] = {}
    for _ in range(2):
        numbering = Numbering(refs, prefix)
        html = env.get_template(template).render(
            **ctx, figure=numbering.figure, ref=numbering.ref, table_ref=numbering.ref,
            table_caption=numbering.table_caption)
        refs = numbering.seen
    return html


def render_markdown(template: str, ctx: dict[str, Any]) -> str:
    return environment(markdown=True).get_template(template).render(**ctx)


# ---------------------------------------------------------------- PDF
def source_date_epoch(registry: dict) -> int:
    """SOURCE_DATE_EPOCH if set, else the finishing time of the newest section (0 with none)."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    times = [e["finished_at"] for e in registry.get("sections", {}).values() if e.get("finished_at")]
    return int(dt.datetime.fromisoformat(max(times)).timestamp()) if times else 0


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
    after their URL) does not depend on where the folder lives; a missing figure stops the build."""

    def __init__(self, folder: Path):
        super().__init__(fail_on_errors=True, allowed_protocols={"https", "data"})
        self.folder = folder

    def fetch(self, url, headers=None):
        if url.startswith(FIGURE_BASE):
            path = self.folder / url[len(FIGURE_BASE):]
            return URLFetcherResponse(url, path.read_bytes(), {"Content-Type": mimetypes.guess_type(path.name)[0]})
        return super().fetch(url, headers)


def pdf_bytes(html: str, folder: Path, epoch: int) -> tuple[bytes, int]:
    """The PDF and its page count; identical input gives identical bytes, wherever ``folder`` is."""
    with _env_var("SOURCE_DATE_EPOCH", str(epoch)):
        document = HTML(string=html, base_url=FIGURE_BASE, url_fetcher=FolderFetcher(folder)).render()
        data = document.write_pdf(pdf_identifier=b"vi-mnist-report")
    return data, len(document.pages)


DOCUMENTS = (("report", "report.html.j2", REPORT_PARTS, ""), ("supplement", "supplement.html.j2", REPORT_PARTS, "S"),
             ("companion", "companion.html.j2", COMPANION_PARTS, "C"))  # name, template, parts, figure prefix


def build(registry: dict, titles: dict[str, str], out: Path, readme: Path | None = None) -> dict[str, int]:
    """Write report.pdf (page budget enforced), supplement.pdf, companion.pdf and README.md files; return page counts."""
    epoch = source_date_epoch(registry)
    date = dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="seconds")
    pages = {}
    outputs = {}
    for name, template, parts, prefix in DOCUMENTS:
        html = render_html(template, context(registry, titles, parts=parts, courses=COMPANION_COURSES, date=date), prefix)
        try:
            outputs[name], pages[name] = pdf_bytes(html, out, epoch)
        except FatalURLFetchingError as err:
            raise RenderError(f"{err.__cause__ or err}; rerun the section that made it") from None
    if pages["report"] > PAGE_BUDGET:
        raise RenderError(f"the report has {pages['report']} pages, over the brief's budget of {PAGE_BUDGET}; "
                          "nothing was written: shorten a section or move material to the supplement")
    ctx = context(registry, titles, pages=pages, date=date)
    for name, data in outputs.items():
        atomic_write(out / f"{name}.pdf", data)
    atomic_write(out / "README.md", render_markdown("submission_README.md.j2", ctx).encode())
    if readme is not None:
        atomic_write(readme, render_markdown("README.md.j2", ctx).encode())
    return pages
