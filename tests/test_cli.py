"""The command line: options, and every bad input as a one-line error with a non-zero exit."""
from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

import reproduce


def invoke(*args, **kwargs):
    return CliRunner().invoke(reproduce.cli, list(args), **kwargs)


def assert_one_line_error(result, *fragments):
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.output


def test_help_explains_every_option():
    """--help names each option of the issue."""
    result = invoke("--help")
    assert result.exit_code == 0
    for option in ("--all", "--only", "--list", "--verify", "--smoke", "--force", "--data-dir", "--out", "--device",
                   "--seed", "--threads", "--jobs", "--spread", "--seeds", "--render", "MNIST_DATA_DIR"):
        assert option in result.output


def test_unknown_section(tmp_path):
    """An unknown section name is a one-line error listing the valid ones."""
    assert_one_line_error(invoke("--only", "q9", "--out", str(tmp_path)), "unknown section 'q9'", "sup, q1")


def test_all_and_only_exclude_each_other(tmp_path):
    """--all together with --only is refused."""
    assert_one_line_error(invoke("--all", "--only", "q1", "--out", str(tmp_path)), "--all and --only")


@pytest.mark.parametrize("seed", ["-1", "1.5", "abc"])
def test_bad_seed(tmp_path, seed):
    """A negative or non-integer seed is refused."""
    assert_one_line_error(invoke("--only", "sup", "--seed", seed, "--out", str(tmp_path)), "--seed")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda(tmp_path):
    """--device cuda on a machine without CUDA is an error, not a silent fallback."""
    assert_one_line_error(invoke("--only", "sup", "--device", "cuda", "--out", str(tmp_path)), "no CUDA")


def test_smoke_never_writes_the_real_report():
    """--smoke with --out report/ is refused, so tiny numbers never replace the real ones."""
    assert_one_line_error(invoke("--smoke", "--only", "sup", "--out", str(reproduce.ROOT / "report")), "--smoke never")


def test_nothing_to_do(tmp_path):
    """Without --all, --only, --list, --verify or --render the command says what to give."""
    assert_one_line_error(invoke("--out", str(tmp_path)), "nothing to do")


def test_unwritable_output_folder(tmp_path):
    """An output folder that cannot be created or written is a one-line error."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert_one_line_error(invoke("--only", "sup", "--out", str(blocker / "report")), "cannot write to")


def test_data_folder_without_mnist_and_no_network(tmp_path, monkeypatch):
    """No MNIST in --data-dir and no network: a one-line error naming the folder and the way out."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing listens there: every download fails at once
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    result = invoke("--only", "sup", "--smoke", "--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "out"))
    assert_one_line_error(result, "could not be downloaded", "--data-dir")


def test_corrupt_registry_is_a_clear_error(tmp_path, tiny_data):
    """A corrupt results.json stops the run with a one-line error that says how to recover."""
    (tmp_path / "results.json").write_text("{not json")
    result = invoke("--only", "sup", "--smoke", "--data-dir", str(tiny_data), "--out", str(tmp_path))
    assert_one_line_error(result, "results.json is corrupt", "move it away")


def test_list_without_results(tmp_path):
    """--list on an empty output folder shows every section with no results."""
    result = invoke("--list", "--out", str(tmp_path))
    assert result.exit_code == 0
    rows = [line.split()[0:2] for line in result.output.splitlines()[1:] if line and not line.startswith(" ")]
    assert rows == [[name, "none"] for name in reproduce.SECTIONS]
