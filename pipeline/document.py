# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""One document: registry -> Jinja2 -> HTML -> WeasyPrint PDF, and the READMEs' Markdown.

The templates mirror ``experiments/``: a section's part of the report or the companion is
``templates/<group>/<section>.html.j2``, where ``<group>`` is the folder of its module below
``experiments/`` (``brief``, ``findings``, ``courses/toronto``, ...); the supplement's parts are
``templates/supplement/<section>.html.j2`` and each course's row of the companion's opening table
``templates/courses/<course>/map.html.j2``. ``check_templates`` runs before any training: every
document, partial and part must exist and compile.

Output is deterministic: figures and tables are numbered in a first pass, the PDF's identifier is
fixed, and its dates (and fontTools' font-subset timestamps) come from SOURCE_DATE_EPOCH.
"""
from __future__ import annotations

import ast
import functools
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape
from weasyprint.urls import FatalURLFetchingError

from . import MODULES, SECTIONS, tolerance
from .cache import ROOT
from .pdf import iso_date, pdf_bytes
from .seed_sd import VERDICT_SDS, combined, seed_sd, seed_values
from .typeset import RenderError, displaymath, format_number, format_percent, math, num, pct, sci, seeds_apart

TEMPLATES = ROOT / "templates"
AUTHOR_FILE = ROOT / "author.toml"
PAGE_BUDGET = 5  # brief, section 4.3.1
NAME_MAX = {"name": 80, "username": 40}  # characters: the most the report's one-line byline holds beside the course
REPORT_PARTS = ("sup", "derivations", "q1", "q2", "q3", "q4", "extra", "ai_tools")
# the companion (report/companion.pdf): what four other courses ask of the same VAE (Toronto, DTU, Eindhoven, Stanford),
# each part a section rendered by its course's template, course by course
COMPANION_PARTS = ("tor_vae", "tor_posterior", "tor_grad", "dtu_vae", "dtu_gauss", "dtu_conv", "ein_vae", "stan_vae", "stan_gd", "stan_nn")
# its opening table: one partial templates/courses/<course>/map.html.j2 of rows per course, in this order
COMPANION_COURSES = {"toronto": "Toronto CSC412/2506", "dtu": "DTU 02460", "eindhoven": "Eindhoven 2AMU20",
                     "stanford": "Stanford STATS305C"}
SUPPLEMENT_PARTS = ("sup", "q1", "q2", "q3", "q4", "q4conv", "extra")
TEXT_PARTS = ("derivations", "ai_tools")  # parts of the report that are text about the brief, not a section's results
DOCUMENTS = {"report": ("report.html.j2", REPORT_PARTS, ""), "supplement": ("supplement.html.j2", SUPPLEMENT_PARTS, "S"),
             "companion": ("companion.html.j2", COMPANION_PARTS, "C")}  # name -> template, parts, figure prefix
if not set(COMPANION_PARTS) & set(SECTIONS):  # a submission tree, without experiments/courses/ (pipeline/__init__.py)
    del DOCUMENTS["companion"]
TEMPLATES_USED = ("style.css", "byline.html.j2", "README.md.j2", "submission_README.md.j2")  # besides DOCUMENTS'



def part_template(part: str, document: str = "report") -> str:
    """The template of one part: ``supplement/<part>`` in the supplement, else ``<group>/<part>`` with the
    group the folder of the section's module below experiments/ (a text part is the brief's)."""
    if document == "supplement":
        return f"supplement/{part}.html.j2"
    group = "brief" if part in TEXT_PARTS else "/".join(MODULES[part].split(".")[1:-1])
    return f"{group}/{part}.html.j2"


def map_template(course: str) -> str:
    return f"courses/{course}/map.html.j2"


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
        if where in NAME_MAX and (len(value) > NAME_MAX[where] or not value.isprintable()):
            why = (f"is {len(value)} characters long" if len(value) > NAME_MAX[where]
                   else "has a line break or another control character")
            raise RenderError(f"{AUTHOR_FILE}: {where} must be one line of at most {NAME_MAX[where]} printable "
                              f"characters (the report's byline), {why}; fix it")
    return data


def check_templates() -> None:
    """RenderError naming the first template or part (of every document in DOCUMENTS) that is missing or does not compile."""
    env = environment()
    names = [*(doc[0] for doc in DOCUMENTS.values()), *TEMPLATES_USED,
             *(part_template(part, name) for name, (_, parts, _) in DOCUMENTS.items() for part in parts
               if part in TEXT_PARTS or part in SECTIONS)]
    for name in names:
        try:
            env.get_template(name)
        except jinja2.TemplateNotFound:
            raise RenderError(f"template templates/{name} is missing; restore it with "
                              f"`git checkout -- templates/{name}`") from None
        except jinja2.TemplateSyntaxError as err:
            raise RenderError(f"template templates/{name}, line {err.lineno}: {err.message}") from None


def source(path: str, name: str) -> Markup:
    """The source of the top-level function or class ``name`` of the file ``path`` (relative to the repository) as a
    code block, read from the file without importing it (the PDF build never imports torch): a code snippet that
    cannot drift from the code."""
    text = (ROOT / path).read_text()
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            return Markup(f'<pre class="code">{escape(ast.get_source_segment(text, node))}</pre>')
    raise RenderError(f"{path} has no function or class {name!r} for a template's source()")


def environment(markdown: bool = False) -> jinja2.Environment:
    """The Jinja2 environment of TEMPLATES, one per process: templates are compiled once, and a forked
    render worker starts with them compiled."""
    return _environment(TEMPLATES, markdown)


@functools.lru_cache(maxsize=None)
def _environment(folder: Path, markdown: bool) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(folder), undefined=jinja2.StrictUndefined,
                             autoescape=not markdown, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(md=markdown_text, num=(lambda x, d=2: format_number(x, d)) if markdown else num,
                       pct=format_percent if markdown else pct,
                       sci=(lambda x, d=1: f"{x:.{d}e}") if markdown else sci,
                       # filters that take the context are never run while compiling: math is typeset when a
                       # document is rendered, in its worker, not in the process that checks the templates
                       math=jinja2.pass_context(lambda _, tex: math(tex)),
                       displaymath=jinja2.pass_context(lambda _, tex, tag=None: displaymath(tex, tag)))
    env.globals.update(has_template=lambda name: name in env.list_templates(), combined=combined, seeds_apart=seeds_apart,
                       part_template=part_template, map_template=map_template,
                       source=source)
    return env


def markdown_text(text: str) -> str:
    """``text`` as literal Markdown: every ASCII punctuation mark backslash-escaped (CommonMark), so that a name
    with ``<``, ``*`` or ``[`` shows as typed, never as HTML, emphasis or a link."""
    return re.sub(r"([!-/:-@\[-`{-~])", r"\\\1", text)


def context(registry: dict, titles: dict[str, str], **extra) -> dict[str, Any]:
    recorded = registry.get("sections", {})
    # in the order of the report (titles are given in section order), each entry knowing its name
    sections = {name: {**recorded[name], "section": name} for name in titles if name in recorded}
    return {"R": {**registry, "sections": sections}, "S": sections, "titles": titles, "author": author(),
            "page_budget": PAGE_BUDGET, "sd": functools.partial(seed_sd, registry),
            "seed_values": functools.partial(seed_values, registry), "seed_beyond": VERDICT_SDS,
            "seeds": ", ".join(map(str, (registry.get("spread") or {}).get("seeds", []))), **extra}


def readme_context(registry: dict, titles: dict[str, str], pages: dict[str, int], date: str) -> dict[str, Any]:
    """The READMEs' context: the registry's, how verify makes its tolerances and the benchmark (bench/results.json)."""
    bench = ROOT / "bench" / "results.json"
    return context(registry, titles, pages=pages, date=date, tolerance=tolerance,
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


# ---------------------------------------------------------------- one document
def document_pdf(name: str, registry: dict, titles: dict[str, str], out: Path, epoch: int,
                 command: str | None = None) -> tuple[bytes, int]:
    """One document of DOCUMENTS as PDF bytes and its page count (run in a worker process by ``build``);
    ``command`` as in ``FolderFetcher``."""
    template, parts, prefix = DOCUMENTS[name]
    date = iso_date(epoch)
    figures = {fig["file"]: (section, fig.get("sha256"))
               for section, entry in registry.get("sections", {}).items() for fig in entry["figures"].values()}
    try:
        html = render_html(template, context(registry, titles, parts=parts, courses=COMPANION_COURSES, date=date), prefix)
        return pdf_bytes(html, out, epoch, figures, command)
    except FatalURLFetchingError as err:
        raise RenderError(str(err.__cause__ or err)) from None
    except jinja2.TemplateError as err:
        raise RenderError(f"template error in the {name}: {err}") from None
