"""The report: page budget, headings, numbers from the registry, seed SDs, determinism, README, missing sections."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

import reproduce
from pipeline import document, render, typeset
from pipeline.seed_sd import combined, seed_sd, seed_values
from pipeline.runner import section_module

ROOT = Path(__file__).resolve().parent.parent
TITLES = {name: section_module(name).TITLE for name in reproduce.SECTIONS}


def inflate(stream: bytes) -> bytes:
    try:
        return zlib.decompress(stream)
    except zlib.error:  # not a Flate stream (or not one we need)
        return b""


def pdf_pages(data: bytes) -> int:
    """Page objects in a PDF, looking inside compressed object streams too."""
    parts = [data] + [inflate(m.group(1)) for m in re.finditer(rb"stream\r?\n(.*?)endstream", data, re.S)]
    return len(re.findall(rb"/Type\s*/Page(?![s\w])", b"".join(parts)))


def load(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def committed() -> dict:
    """The committed registry of the real run."""
    path = ROOT / "report" / "results.json"
    if not path.exists():
        pytest.skip("no committed report/results.json")
    return json.loads(path.read_text())


def report_html(registry: dict) -> str:
    return document.render_html("report.html.j2", document.context(registry, TITLES, parts=document.REPORT_PARTS, date="x"))


class Spans(HTMLParser):
    """Collects the text of <span class="n ..."> elements and all visible text."""

    def __init__(self):
        super().__init__()
        self.numbers: list[tuple[str, bool]] = []
        self._depth = 0
        self._pct = False

    def handle_starttag(self, tag, attrs):
        classes = dict(attrs).get("class", "") or ""
        if tag == "span" and "n" in classes.split():
            self._depth, self._pct = 1, "pct" in classes.split()

    def handle_data(self, data):
        if self._depth:
            self.numbers.append((data, self._pct))
            self._depth = 0


def registry_numbers(obj) -> list[float]:
    if isinstance(obj, bool):
        return []
    if isinstance(obj, (int, float)):
        return [float(obj)]
    if isinstance(obj, dict):
        return [v for value in obj.values() for v in registry_numbers(value)]
    if isinstance(obj, list):
        return [v for value in obj for v in registry_numbers(value)]
    return []


def test_every_number_in_the_text_comes_from_the_registry(committed):
    """Each number the report prints (span.n) equals, at its printed precision, a number in the registry."""
    parser = Spans()
    parser.feed(report_html(committed))
    known = registry_numbers(committed)
    assert len(parser.numbers) > 100
    for text, is_pct in parser.numbers:
        clean = text.replace("\u2212", "-").replace(",", "").rstrip("%")
        value, digits = float(clean), len(clean.split(".")[1]) if "." in clean else 0
        scale = 100 if is_pct else 1
        assert any(abs(scale * k - value) <= 0.5 * 10 ** -digits + 1e-9 for k in known), text


def spread_registry(spread_config: dict, spread_smoke: bool = False) -> dict:
    """A registry whose section sup (epochs 3, full size) has a spread recorded with the given configuration and size."""
    return {"sections": {"sup": {"config": {"epochs": 3}, "smoke": False, "metrics": {}}},
            "spread": {"seeds": [0, 1, 2], "smoke": spread_smoke, "sections": {"sup": {"config": spread_config, "metrics": {
                "test_acc": {"values": [0.99, 0.989, 0.991], "sd": 0.001},
                "val_loss": {"values": [[0.3, 0.1], [0.2, 0.1], [0.4, 0.1]], "sd": [0.1, 0.0]}}}}}}


def test_seed_sd_is_the_recorded_sd_of_a_matching_spread():
    """With the spread measured at the entry's configuration and size, seed_sd gives the recorded SD, per element for lists."""
    registry = spread_registry({"epochs": 3})
    assert seed_sd(registry, "sup", "test_acc") == 0.001 and seed_sd(registry, "sup", "val_loss") == [0.1, 0.0]


def test_seed_sd_is_none_for_a_spread_of_another_configuration():
    """A spread measured with another configuration is not used: no SD."""
    assert seed_sd(spread_registry({"epochs": 5}), "sup", "test_acc") is None


def test_seed_sd_is_none_for_a_smoke_spread_of_a_full_entry():
    """A spread of a smoke run is not used for a full-size entry: no SD."""
    assert seed_sd(spread_registry({"epochs": 3}, spread_smoke=True), "sup", "test_acc") is None


def test_seed_sd_is_none_for_an_unrecorded_key_or_section():
    """A metric the spread lacks, or a section without an entry, has no SD."""
    registry = spread_registry({"epochs": 3})
    assert seed_sd(registry, "sup", "test_loss") is None and seed_sd(registry, "q1", "test_acc") is None


def test_seed_values_are_the_recorded_values_under_the_rule_of_seed_sd():
    """seed_values gives each seed's value of a matching spread, and None where seed_sd gives None."""
    registry = spread_registry({"epochs": 3})
    assert seed_values(registry, "sup", "test_acc") == [0.99, 0.989, 0.991]
    assert seed_values(spread_registry({"epochs": 5}), "sup", "test_acc") is None
    assert seed_values(registry, "sup", "test_loss") is None


def test_combined_sd_is_the_root_sum_of_squares_and_none_without_every_part():
    """combined(3, 4) = 5 exactly; a part without an SD leaves the difference without one."""
    assert combined(3.0, 4.0) == 5.0 and combined(0.3, None) is None


def test_seeds_apart_prints_the_difference_in_seed_sds():
    """-8.6 against an SD of 2 is 4.3 seed SDs; from 10 up, whole numbers."""
    assert "4.3" in typeset.seeds_apart(-8.6, 2.0) and "seed SDs" in typeset.seeds_apart(-8.6, 2.0)
    assert ">44<" in typeset.seeds_apart(44.4, 1.0)


def supplement_html(registry: dict) -> str:
    return document.render_html("supplement.html.j2", document.context(registry, TITLES, parts=document.SUPPLEMENT_PARTS, date="x"), "S")


def test_supplement_prints_the_recorded_seed_sd_beside_the_test_accuracy(committed):
    """The SD the supplement prints beside the test accuracy is the one the committed spread records."""
    spread = committed["spread"]
    accuracy, recorded = committed["sections"]["sup"]["metrics"]["test_acc"], spread["sections"]["sup"]["metrics"]["test_acc"]["sd"]
    seeds = ", ".join(map(str, spread["seeds"]))
    assert f"{typeset.pct(accuracy)} &plusmn; {typeset.pct(recorded, 3)} (SD over seeds {seeds})" in supplement_html(committed)


def test_report_prints_no_seed_sd_when_the_spread_does_not_match(committed):
    """With every spread recorded at another configuration, the report and supplement render and mention no seed SD."""
    registry = json.loads(json.dumps(committed))
    for record in registry["spread"]["sections"].values():
        record["config"] = {"another": True}
    for html in (report_html(registry), supplement_html(registry)):
        assert "seed SD" not in html and "SD over seeds" not in html


def test_every_required_heading_is_present(committed):
    """The report has a heading for section 2, each of Q1 to Q4, the derivations, findings and AI tools."""
    headings = re.findall(r"<h2>(.*?)</h2>", report_html(committed))
    for needle in ("Supervised classification", "derivations", "Q1: amortized VAE", "Q2: sampling", "Q3: latent optimization",
                   "Q4: the log-probability", "Additional findings", "Use of AI tools"):
        assert any(needle in h for h in headings), needle


def test_committed_report_is_within_the_page_budget():
    """The committed report.pdf has at most five pages."""
    path = ROOT / "report" / "report.pdf"
    if not path.exists():
        pytest.skip("no committed report")
    assert 1 <= pdf_pages(path.read_bytes()) <= document.PAGE_BUDGET


def test_over_budget_report_is_an_error_and_writes_nothing(first_run, tmp_path, monkeypatch):
    """A report longer than the budget raises RenderError and writes no PDF or README."""
    out, _ = first_run
    shutil.copytree(out / "figures", tmp_path / "figures")
    monkeypatch.setattr(render, "PAGE_BUDGET", 1)
    with pytest.raises(typeset.RenderError, match="over the brief's budget of 1"):
        render.build(load(out), TITLES, tmp_path, jobs=3)
    assert [p.name for p in tmp_path.iterdir()] == ["figures"]


def test_missing_figure_is_an_error(first_run, tmp_path):
    """A figure named in the registry but missing on disk stops the build, naming its section and the --force command."""
    out, _ = first_run
    with pytest.raises(typeset.RenderError, match=r"sup_curves.svg of section sup is missing .*--only sup --force"):
        render.build(load(out), TITLES, tmp_path)


def test_same_registry_gives_byte_identical_pdfs_across_processes_and_worker_counts(first_run, tmp_path):
    """Two `reproduce.py --render` processes, one laying out in itself (--jobs 1), one in three workers, write the same PDFs."""
    out, _ = first_run
    pdfs = []
    for attempt, jobs in (("a", "1"), ("b", "3")):
        copy = tmp_path / attempt
        shutil.copytree(out, copy)
        for name in document.DOCUMENTS:
            (copy / f"{name}.pdf").unlink()
        env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
        done = subprocess.run([sys.executable, str(ROOT / "reproduce.py"), "--render", "--smoke", "--out", str(copy),
                               "--jobs", jobs], capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
        pdfs.append([(copy / f"{name}.pdf").read_bytes() for name in document.DOCUMENTS])
    assert pdfs[0] == pdfs[1]


def test_section_without_results_names_its_command(first_run):
    """A section missing from the registry renders a box with the command that produces it."""
    out, _ = first_run
    registry = load(out)
    del registry["sections"]["q3"]
    html = report_html(registry)
    assert "No results for this section yet" in html and "python reproduce.py --only q3" in html


def test_committed_readme_matches_its_template(committed):
    """README.md is exactly what templates/README.md.j2 renders from the committed registry."""
    pdf = ROOT / "report" / "report.pdf"
    pages = {"report": pdf_pages(pdf.read_bytes())}
    ctx = document.readme_context(committed, TITLES, pages, "")
    assert document.render_markdown("README.md.j2", ctx) == (ROOT / "README.md").read_text()


def test_aligned_math_is_typeset():
    """Multi-line aligned TeX becomes an SVG image with its source as alt text."""
    html = str(typeset.displaymath(r"\begin{aligned}a&=b\\&=c\end{aligned}", "7"))
    assert 'src="data:image/svg+xml;base64,' in html and r"\begin{aligned}" in html and "(7)" in html


def test_companion_without_results_says_not_yet_computed_for_every_course():
    """With an empty registry the companion's table says "not yet computed" for each of the four courses (at least once each)."""
    ctx = document.context({"provenance": {}}, TITLES, parts=document.COMPANION_PARTS, courses=document.COMPANION_COURSES, date="x")
    html = document.render_html("companion.html.j2", ctx, "C")
    table = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = [row for row in table.split("<tr>") if "not yet computed" in row]
    assert len(document.COMPANION_COURSES) == 4 and len(rows) >= 4
    for course in ("tor_vae", "dtu_vae", "ein_vae", "stan_vae"):
        assert any(f"--only {course}" in row for row in rows)
    for part in document.COMPANION_PARTS:
        assert part not in TITLES or f"python reproduce.py --only {part}" in html


def test_source_is_the_function_as_written_and_an_unknown_name_is_an_error():
    """source() returns a function's own text from its file (escaped, in a code block); a missing name is a RenderError."""
    block = document.source("experiments/lib/prob.py", "bernoulli_sample")
    assert block.startswith('<pre class="code">def bernoulli_sample(') and block.endswith("</pre>")
    with pytest.raises(typeset.RenderError):
        document.source("experiments/lib/prob.py", "no_such_function")
