"""Registry -> Jinja2 -> HTML -> WeasyPrint PDF, and the READMEs.

Math is typeset by ziamath, a pure-Python TeX-to-SVG renderer: unlike matplotlib's mathtext it
handles ``\\begin{aligned}``, and unlike MathJax or KaTeX it needs no JavaScript engine, which
WeasyPrint does not have. It draws with DejaVu Math TeX Gyre, the math companion of the DejaVu
Serif text face, so text and math share one family.

``check_inputs`` runs before any training: author.toml, every template and partial (the lists of
parts below), and the fonts (found through fontconfig; a missing face is an error naming the
package, never a fallback that would change the PDF).

Output is deterministic: figures and tables are numbered in a first pass, the PDF's identifier is
fixed, and its dates (and fontTools' font-subset timestamps) come from SOURCE_DATE_EPOCH, which
defaults to the time of the newest result in the registry.
"""
from __future__ import annotations

import base64
import concurrent.futures as cf
import datetime as dt
import functools
import hashlib
import json
import logging
import mimetypes
import multiprocessing
import os
import sys
import tomllib
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jinja2
import ziamath
from markupsafe import Markup, escape
warnings.filterwarnings("ignore", message="No fonts configured")  # check_fonts says it in one line instead
from weasyprint import HTML  # noqa: E402
from weasyprint.text.ffi import ffi, fontconfig  # noqa: E402
from weasyprint.urls import FatalURLFetchingError, URLFetcher, URLFetcherResponse  # noqa: E402

from . import SECTIONS
from .cache import ROOT
from .interrupts import child_of
from .registry import atomic_write
from .seed_sd import VERDICT_SDS, combined, seed_sd
from .verify import SPREAD_SDS

TEMPLATES = ROOT / "templates"
AUTHOR_FILE = ROOT / "author.toml"
PAGE_BUDGET = 5  # brief, section 4.3.1
MATH_PX = 12.5  # math size in CSS px, matching the 9.4pt body text
FIGURE_BASE = "https://report.invalid/"  # figures/... resolve against this, served from the output folder
REPORT_PARTS = ("sup", "derivations", "q1", "q2", "q3", "q4", "extra", "ai_tools")
# the companion (report/companion.pdf): what four other courses ask of the same VAE (Toronto, DTU, Eindhoven, Stanford),
# each part a section rendered by templates/companion/<part>.html.j2, course by course
COMPANION_PARTS = ("tor_vae", "tor_posterior", "tor_grad", "dtu_vae", "dtu_gauss", "ein_vae", "stan_vae")
# its opening table: one partial templates/companion/map_<course>.html.j2 of rows per course, in this order
COMPANION_COURSES = {"toronto": "Toronto CSC412/2506", "dtu": "DTU 02460", "eindhoven": "Eindhoven 2AMU20",
                     "stanford": "Stanford STATS305C"}
SUPPLEMENT_PARTS = ("sup", "q1", "q3", "q4", "q4conv", "extra")  # Q2 has nothing beyond the report
TEXT_PARTS = ("derivations", "ai_tools")  # parts that are text, not a section's results
# templates/<folder>/<part>.html.j2 of each list; check_templates requires one for every part that is a
# text part or a section of pipeline.SECTIONS (a companion part not yet a section is skipped by its template)
PARTIALS = {"sections": REPORT_PARTS, "supplement": SUPPLEMENT_PARTS, "companion": COMPANION_PARTS}
TEMPLATES_USED = ("style.css", "byline.html.j2", "README.md.j2", "submission_README.md.j2")  # besides DOCUMENTS'
MATH_FAMILY = "DejaVu Math TeX Gyre"
FONTS = (  # (family, style, Debian/Ubuntu package): every face the stylesheet and the math use
    ("DejaVu Serif", "Book", "fonts-dejavu-core"), ("DejaVu Serif", "Bold", "fonts-dejavu-core"),
    ("DejaVu Serif", "Italic", "fonts-dejavu-extra"), ("DejaVu Sans Mono", "Book", "fonts-dejavu-core"),
    (MATH_FAMILY, "Regular", "fonts-dejavu-extra"),
)

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
    expr = ziamath.Latex(tex, size=MATH_PX * (1.05 if display else 1.0), font=math_font(), inline=not display)
    width, height = expr.getsize()
    margin = expr.margin
    data = base64.b64encode(expr.svg().encode()).decode()
    # the SVG's box extends ``margin`` beyond the glyphs; its baseline is -ymin above the box bottom
    style = (f"width:{width + 2 * margin:.2f}px;height:{height + 2 * margin:.2f}px;"
             f"vertical-align:{expr.getyofst() - margin:.2f}px")
    return f'<img class="math" alt="{escape(tex)}" style="{style}" src="data:image/svg+xml;base64,{data}">'


def seeds_apart(d: float, s: float) -> Markup:
    """A difference ``d`` in units of its SD over seeds ``s``: "1.9 seed SDs" (whole numbers from 10 up)."""
    if s <= 0:
        return Markup("with seed SD 0")
    r = abs(d) / s
    return Markup(f"{num(r, 1 if r < 10 else 0)} seed SDs")


def math(tex: str) -> Markup:
    return Markup(_math_img(str(tex).strip(), False))


def displaymath(tex: str, tag: str | None = None) -> Markup:
    """A centred equation; ``tag`` (such as "7") is printed at the right margin as "(7)"."""
    number = f'<span class="eqtag">({escape(str(tag))})</span>' if tag else ""
    return Markup(f'<div class="displaymath">{_math_img(str(tex).strip(), True)}{number}</div>')


# ---------------------------------------------------------------- fonts
def font_file(family: str, style: str) -> str | None:
    """The file fontconfig gives for exactly this family and style; None when it would substitute another."""
    config = fontconfig.FcInitLoadConfigAndFonts()
    pattern = ffi.gc(fontconfig.FcPatternCreate(), fontconfig.FcPatternDestroy)
    fontconfig.FcPatternAddString(pattern, b"family", family.encode())
    fontconfig.FcPatternAddString(pattern, b"style", style.encode())
    fontconfig.FcConfigSubstitute(config, pattern, fontconfig.FcMatchPattern)
    fontconfig.FcDefaultSubstitute(pattern)
    match = fontconfig.FcFontMatch(config, pattern, ffi.new("FcResult *"))
    if match == ffi.NULL:
        return None
    found, text = {}, ffi.new("FcChar8 **")
    for tag in (b"family", b"style", b"file"):
        if fontconfig.FcPatternGetString(match, tag, 0, text) == fontconfig.FcResultMatch:
            found[tag] = ffi.string(text[0]).decode()
    return found.get(b"file") if (found.get(b"family"), found.get(b"style")) == (family, style) else None


def check_fonts() -> None:
    """RenderError naming the packages to install unless every face in FONTS is installed."""
    missing = [(f"{family} {style}", package) for family, style, package in FONTS if font_file(family, style) is None]
    if missing:
        packages = " ".join(sorted({package for _, package in missing}))
        raise RenderError(f"font {missing[0][0]} is not installed{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}, "
                          f"and the report needs it: install {packages} (Debian/Ubuntu: apt-get install {packages}; "
                          "macOS: brew install --cask font-dejavu)")


@functools.lru_cache(maxsize=None)
def math_font() -> str:
    path = font_file(MATH_FAMILY, "Regular")
    if path is None:
        check_fonts()
    return path


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
    """author.toml, checked: name and username strings, [ai_tools] with ``used`` (true/false) and ``text``."""
    restore = f"restore it with `git checkout -- {AUTHOR_FILE.name}`"
    try:
        with open(AUTHOR_FILE, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise RenderError(f"{AUTHOR_FILE} is missing; {restore} and fill in the author's name and username") from None
    except OSError as err:
        raise RenderError(f"cannot read {AUTHOR_FILE} ({err.strerror or err})") from None
    except tomllib.TOMLDecodeError as err:
        raise RenderError(f"{AUTHOR_FILE} is not valid TOML ({err}); fix it or {restore}") from None
    tools = data.get("ai_tools")
    for where, value, kind in (("name", data.get("name"), str), ("username", data.get("username"), str),
                               ("[ai_tools]", tools, dict),
                               ("ai_tools.used", (tools or {}).get("used") if isinstance(tools, dict) else None, bool),
                               ("ai_tools.text", (tools or {}).get("text") if isinstance(tools, dict) else None, str)):
        if not isinstance(value, kind):
            want = {str: "a string", dict: "a table", bool: "true or false"}[kind]
            raise RenderError(f"{AUTHOR_FILE}: {where} must be {want}, "
                              f"{'is missing' if value is None else f'is {value!r}'}; fix it or {restore}")
    return data


def check_templates() -> None:
    """RenderError naming the first template or partial (of every list in PARTIALS) that is missing or does not compile."""
    env = environment()
    names = [*(doc[0] for doc in DOCUMENTS.values()), *TEMPLATES_USED,
             *(f"{folder}/{part}.html.j2" for folder, parts in PARTIALS.items() for part in parts
               if part in TEXT_PARTS or part in SECTIONS)]
    for name in names:
        try:
            env.get_template(name)
        except jinja2.TemplateNotFound:
            raise RenderError(f"template templates/{name} is missing; restore it with "
                              f"`git checkout -- templates/{name}`") from None
        except jinja2.TemplateSyntaxError as err:
            raise RenderError(f"template templates/{name}, line {err.lineno}: {err.message}") from None


def check_inputs() -> None:
    """What rendering needs besides the registry, checked before any section runs."""
    author()
    check_templates()
    check_fonts()


def environment(markdown: bool = False) -> jinja2.Environment:
    """The Jinja2 environment of TEMPLATES, one per process: templates are compiled once, and a forked
    render worker starts with them compiled."""
    return _environment(TEMPLATES, markdown)


@functools.lru_cache(maxsize=None)
def _environment(folder: Path, markdown: bool) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(folder), undefined=jinja2.StrictUndefined,
                             autoescape=not markdown, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(num=(lambda x, d=2: format_number(x, d)) if markdown else num,
                       pct=(lambda x, d=2: format_number(100 * x, d) + "%") if markdown else pct,
                       # filters that take the context are never run while compiling: math is typeset when a
                       # document is rendered, in its worker, not in the process that checks the templates
                       math=jinja2.pass_context(lambda _, tex: math(tex)),
                       displaymath=jinja2.pass_context(lambda _, tex, tag=None: displaymath(tex, tag)))
    env.globals.update(has_template=lambda name: name in env.list_templates(), combined=combined, seeds_apart=seeds_apart)
    return env


def context(registry: dict, titles: dict[str, str], **extra) -> dict[str, Any]:
    recorded = registry.get("sections", {})
    # in the order of the report (titles are given in section order), each entry knowing its name
    sections = {name: {**recorded[name], "section": name} for name in titles if name in recorded}
    return {"R": {**registry, "sections": sections}, "S": sections, "titles": titles, "author": author(),
            "page_budget": PAGE_BUDGET, "sd": functools.partial(seed_sd, registry), "seed_beyond": VERDICT_SDS,
            "seeds": ", ".join(map(str, (registry.get("spread") or {}).get("seeds", []))), **extra}


def readme_context(registry: dict, titles: dict[str, str], pages: dict[str, int], date: str) -> dict[str, Any]:
    """The READMEs' context: the registry's, the verify tolerance's multiple and the benchmark (bench/results.json)."""
    bench = ROOT / "bench" / "results.json"
    return context(registry, titles, pages=pages, date=date, spread_sds=SPREAD_SDS,
                   bench=json.loads(bench.read_text()) if bench.is_file() else None)


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
    after their URL) does not depend on where the folder lives; a missing figure stops the build."""

    def __init__(self, folder: Path, figures: dict[str, tuple[str, str | None]] | None = None):
        super().__init__(fail_on_errors=True, allowed_protocols={"https", "data"})
        self.folder = folder
        self.figures = figures or {}  # figures/<file> -> (section, recorded SHA-256)

    def fetch(self, url, headers=None):
        if url.startswith(FIGURE_BASE):
            name = url[len(FIGURE_BASE):]
            path, (section, digest) = self.folder / name, self.figures.get(name, ("?", None))
            rerun = f"rerun it with `python reproduce.py --only {section} --force --out {self.folder}`"
            if not path.is_file():
                state = "not a file" if path.exists() else "missing"
                raise FileNotFoundError(f"figure {name} of section {section} is {state} in {self.folder}; {rerun}")
            data = path.read_bytes()
            if digest and hashlib.sha256(data).hexdigest() != digest:
                raise ValueError(f"figure {name} of section {section} is not the one its numbers were recorded with "
                                 f"(SHA-256 differs); {rerun}")
            return URLFetcherResponse(url, data, {"Content-Type": mimetypes.guess_type(path.name)[0]})
        return super().fetch(url, headers)


def pdf_bytes(html: str, folder: Path, epoch: int, figures: dict | None = None) -> tuple[bytes, int]:
    """The PDF and its page count; identical input gives identical bytes, wherever ``folder`` is."""
    with _env_var("SOURCE_DATE_EPOCH", str(epoch)):
        document = HTML(string=html, base_url=FIGURE_BASE, url_fetcher=FolderFetcher(folder, figures)).render()
        data = document.write_pdf(pdf_identifier=b"vi-mnist-report")
    return data, len(document.pages)


DOCUMENTS = {"report": ("report.html.j2", REPORT_PARTS, ""), "supplement": ("supplement.html.j2", SUPPLEMENT_PARTS, "S"),
             "companion": ("companion.html.j2", COMPANION_PARTS, "C")}  # name -> template, parts, figure prefix
LAYOUT_ORDER = ("companion", "supplement", "report")  # the slowest to lay out first (measured), the quickest fills in last


def document_pdf(name: str, registry: dict, titles: dict[str, str], out: Path, epoch: int) -> tuple[bytes, int]:
    """One document of DOCUMENTS as PDF bytes and its page count (run in a worker process by ``build``)."""
    template, parts, prefix = DOCUMENTS[name]
    date = iso_date(epoch)
    figures = {fig["file"]: (section, fig.get("sha256"))
               for section, entry in registry.get("sections", {}).items() for fig in entry["figures"].values()}
    try:
        html = render_html(template, context(registry, titles, parts=parts, courses=COMPANION_COURSES, date=date), prefix)
        return pdf_bytes(html, out, epoch, figures)
    except FatalURLFetchingError as err:
        raise RenderError(str(err.__cause__ or err)) from None
    except jinja2.TemplateError as err:
        raise RenderError(f"template error in the {name}: {err}") from None


def build(registry: dict, titles: dict[str, str], out: Path, readme: Path | None = None, jobs: int = 1) -> dict[str, int]:
    """Write report.pdf (page budget enforced), supplement.pdf, companion.pdf and README.md files; return page counts.

    With ``jobs`` > 1 the documents are laid out side by side in that many worker processes (WeasyPrint is
    single-threaded), the longest first; forked on Linux, so that a worker starts with this process's imports
    and compiled templates, and spawned elsewhere. Nothing is written until every document is made."""
    epoch = source_date_epoch(registry)
    if jobs > 1:
        context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        with cf.ProcessPoolExecutor(min(jobs, len(DOCUMENTS)), mp_context=context, initializer=child_of,
                                    initargs=(os.getpid(),)) as pool:
            futures = {name: pool.submit(document_pdf, name, registry, titles, out, epoch) for name in LAYOUT_ORDER}
            made = {name: future.result() for name, future in futures.items()}
    else:
        made = {name: document_pdf(name, registry, titles, out, epoch) for name in DOCUMENTS}
    pages = {name: made[name][1] for name in DOCUMENTS}
    if pages["report"] > PAGE_BUDGET:
        raise RenderError(f"the report has {pages['report']} pages, over the brief's budget of {PAGE_BUDGET}; "
                          "nothing was written: shorten a section or move material to the supplement")
    ctx = readme_context(registry, titles, pages, iso_date(epoch))
    for name in DOCUMENTS:
        atomic_write(out / f"{name}.pdf", made[name][0])
    atomic_write(out / "README.md", render_markdown("submission_README.md.j2", ctx).encode())
    if readme is not None:
        atomic_write(readme, render_markdown("README.md.j2", ctx).encode())
    return pages
