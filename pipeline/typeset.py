# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""Numbers, math and fonts for the documents: how a value and a formula are printed.

Math is typeset by ziamath, a pure-Python TeX-to-SVG renderer: unlike matplotlib's mathtext it
handles ``\\begin{aligned}``, and unlike MathJax or KaTeX it needs no JavaScript engine, which
WeasyPrint does not have. It draws with DejaVu Math TeX Gyre, the math companion of the DejaVu
Serif text face, so text and math share one family. Fonts are found through fontconfig; a missing
face is an error naming the package, never a fallback that would change the PDF.
"""
from __future__ import annotations

import base64
import functools
import warnings

import ziamath
from markupsafe import Markup, escape
warnings.filterwarnings("ignore", message="No fonts configured")  # check_fonts says it in one line instead
from weasyprint.text.ffi import ffi, fontconfig  # noqa: E402

MATH_PX = 12.5  # math size in CSS px, matching the 9.4pt body text
MATH_FAMILY = "DejaVu Math TeX Gyre"
FONTS = (  # (family, style, Debian/Ubuntu package): every face the stylesheet and the math use
    ("DejaVu Serif", "Book", "fonts-dejavu-core"), ("DejaVu Serif", "Bold", "fonts-dejavu-core"),
    ("DejaVu Serif", "Italic", "fonts-dejavu-extra"), ("DejaVu Sans Mono", "Book", "fonts-dejavu-core"),
    (MATH_FAMILY, "Regular", "fonts-dejavu-extra"),
)


class RenderError(RuntimeError):
    """The report cannot be built as required (for example, it is over the page budget)."""


# ---------------------------------------------------------------- numbers and math
def finite(x: float) -> float:
    """``x`` when it is a finite number (not a boolean, null or text); RenderError in one short line otherwise."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not -float("inf") < x < float("inf"):
        what = repr(x) if isinstance(x, (int, float)) or x is None else f"a {type(x).__name__}"
        raise RenderError(f"a number was expected where the registry holds {what[:40]}: an entry was edited; "
                          "rerun its section with --only SECTION --force")
    return x


def format_number(x: float, digits: int = 2) -> str:
    """Fixed decimals, thousands grouped from 10,000 up, a true minus sign."""
    x = finite(x)
    text = f"{x:,.{digits}f}" if abs(x) >= 10000 else f"{x:.{digits}f}"
    return text.replace("-", "\u2212")


def format_percent(x: float, digits: int = 2) -> str:
    """A fraction as a percentage: 0.5 -> 50.00%."""
    return format_number(100 * finite(x), digits) + "%"


def num(x: float, digits: int = 2) -> Markup:
    return Markup(f'<span class="n">{format_number(x, digits)}</span>')


def sci(x: float, digits: int = 1) -> Markup:
    """A number in scientific notation, "1.5 × 10<sup>−15</sup>" (0 printed as 0), for values spanning many orders."""
    if x == 0:
        return num(0, 0)
    mantissa, exponent = f"{x:.{digits}e}".split("e")
    return Markup(f'<span class="n">{format_number(float(mantissa), digits)}&#8239;&times;&#8239;10<sup>{format_number(int(exponent), 0)}</sup></span>')


def pct(x: float, digits: int = 2) -> Markup:
    """A fraction printed as a percentage."""
    return Markup(f'<span class="n pct">{format_percent(x, digits)}</span>')


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
