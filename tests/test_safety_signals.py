"""Failing safely, second round: no hang after Ctrl-C, SIGTERM or a dead worker; a render that cannot draw a figure
writes nothing; conflicting flags, full disks, closed pipes and odd names are one line."""
from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import reproduce
from pipeline import document, pdf, registry
from pipeline.interrupts import Interrupted, interruptible
from pipeline.typeset import RenderError
from test_cli import assert_one_line_error, invoke
from test_interrupts import LAUNCH, gone

ROOT = Path(__file__).resolve().parent.parent
ENDS_WITHIN = 20  # seconds: generous, for a loaded two-core machine


def render_process(out: Path) -> subprocess.Popen:
    """``reproduce.py --render`` of ``out`` (no results needed) with two layout workers, in its own process group."""
    return subprocess.Popen([sys.executable, str(ROOT / "reproduce.py"), "--render", "--jobs", "2", "--out", str(out)],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)


def children(proc: subprocess.Popen, count: int) -> list[int]:
    """Wait until ``proc`` has ``count`` child processes (its workers); their pids."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        kids = [int(k) for k in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
        if len(kids) >= count:
            return kids
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    pytest.fail("the workers did not start")


def unlocked(folder: Path) -> bool:
    with open(folder / registry.LOCK_FILE, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
    return True


linux_only = pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc (Linux)")


@linux_only
def test_two_quick_ctrl_c_during_render_exit_130_and_release_the_lock(tmp_path):
    """Ctrl-C twice, 20 ms apart, while the documents are laid out: exit 130 within seconds, no traceback, no PDF, lock free."""
    out = tmp_path / "report"
    proc = render_process(out)
    workers = children(proc, 2)
    for _ in range(2):
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.02)
    _, err = proc.communicate(timeout=ENDS_WITHIN)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted by SIGINT" in err
    assert not list(out.glob("*.pdf")) and unlocked(out)
    assert all(gone(pid) for pid in workers)


@linux_only
def test_a_render_worker_killed_by_sigterm_is_one_line_naming_its_document(tmp_path):
    """A render worker sent SIGTERM (a forked worker must not run the parent's handler and survive it) ends the run at once, naming the document."""
    out = tmp_path / "report"
    proc = render_process(out)
    workers = children(proc, 2)
    os.kill(workers[0], signal.SIGTERM)
    _, err = proc.communicate(timeout=ENDS_WITHIN)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1, err
    assert "was killed by SIGTERM" in lines[0] and ".pdf" in lines[0]
    assert "nothing was written" in lines[0]
    assert not list(out.glob("*.pdf")) and unlocked(out)


@linux_only
def test_a_killed_training_worker_names_its_section_and_the_other_section_is_kept(tiny_root, tmp_path):
    """SIGKILL to q1's worker while sup computes beside it: sup finishes and is kept, then one line names q1 (exit 1)."""
    root, sums = tiny_root
    out, release = tmp_path / "report", tmp_path / "release"
    env = {**os.environ, "TEST_MNIST_MD5": json.dumps(sums), "PYTHONUNBUFFERED": "1", "TEST_BLOCK_SECTION": "sup,q1",
           "TEST_RELEASE": str(release)}
    proc = subprocess.Popen([sys.executable, str(LAUNCH), "--smoke", "--only", "sup,q1", "--jobs", "2", "--data-dir",
                             str(root), "--out", str(out), "--checkpoints", str(tmp_path / "ckpt")],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    seen, pids, deadline = [], {}, time.monotonic() + 180
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("[test] "):
            pids[line.split()[1]] = int(line.split()[-1])
        if len(pids) == 2:
            break
        assert time.monotonic() < deadline, "".join(seen)
    os.kill(pids["q1"], signal.SIGKILL)
    time.sleep(1)
    assert proc.poll() is None, "the run ended before sup, still computing, was done"
    release.touch()
    _, rest = proc.communicate(timeout=ENDS_WITHIN)
    errors = [line for line in rest.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 1 and "Traceback" not in rest, "".join(seen) + rest
    assert len(errors) == 1 and "section q1 was killed by SIGKILL" in errors[0]
    assert "finished sections are saved" in errors[0]
    assert set(json.loads((out / "results.json").read_text())["sections"]) == {"sup"}
    assert gone(pids["sup"])


def test_a_program_stopped_by_a_signal_ignores_the_next_until_it_exits():
    """Run as the program (final), a signal that stopped the command leaves SIGINT and SIGTERM ignored: a second Ctrl-C cannot cut the exit short."""
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(Interrupted), interruptible(final=True):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        assert all(signal.getsignal(s) == signal.SIG_IGN for s in old)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


@pytest.mark.parametrize("svg", [b"<svg xmlns='http://www.w3.org/2000/svg'><path d=", b"not an image"])
def test_a_figure_weasyprint_cannot_draw_is_an_error_naming_it(tmp_path, svg):
    """A figure WeasyPrint logs as failed (it would leave it out or half drawn) is a RenderError naming the file and section."""
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "q1_loss.svg").write_bytes(svg)
    with pytest.raises(RenderError) as err:
        pdf.pdf_bytes('<p>text</p><img src="figures/q1_loss.svg">', tmp_path, 0,
                      {"figures/q1_loss.svg": ("q1", None)}, "python reproduce.py --smoke --out x")
    assert "figure figures/q1_loss.svg of section q1" in str(err.value)
    assert "`python reproduce.py --smoke --out x --only q1 --force`" in str(err.value)


@pytest.mark.parametrize("args, fragment", [
    (["--list", "--verify"], "--list and --verify"),
    (["--all", "--render"], "--all and --render"),
    (["--render", "--only", "q4"], "--only does nothing with --render"),
    (["--render", "--force"], "--force does nothing with --render"),
    (["--list", "--only", "q4"], "--only does nothing with --list"),
    (["--verify", "--force"], "--force does nothing with --verify"),
    (["--only", "q4", "--seeds", "1,2"], "--seeds does nothing with --only"),
    (["--all", "--seeds", "1,2"], "--seeds does nothing with --all"),
    (["--all", "--jitter", "2"], "--jitter does nothing with --all"),
    (["--spread", "--jitter", "2", "--seeds", "1,2"], "--jitter reruns at --seed instead of running --seeds"),
])
def test_conflicting_flags_are_refused_in_one_line(tmp_path, args, fragment):
    """Two commands at once, or an option the command does not read, is refused rather than dropped."""
    result = invoke(*args, "--out", str(tmp_path / "out"))
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "out").exists()


def test_a_full_disk_replaces_no_file_and_names_the_one_it_was_writing(tmp_path, monkeypatch):
    """The second of two files fails to be written (disk full): the first keeps its old bytes, and the error names the second."""
    first, second = tmp_path / "report.pdf", tmp_path / "companion.pdf"
    first.write_bytes(b"old")
    fsync, calls = os.fsync, []

    def fsync_fills_up(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_fills_up)
    with pytest.raises(OSError) as err:
        registry.atomic_write_all({first: b"new", second: b"new"})
    assert err.value.filename == str(second) and err.value.errno == errno.ENOSPC
    assert first.read_bytes() == b"old" and not second.exists() and not list(tmp_path.glob(".*.tmp"))


def test_a_full_disk_during_a_run_says_what_is_saved(tiny_data, tmp_path, monkeypatch):
    """ENOSPC while a section is committed: one line naming the file and saying that finished sections are saved."""
    def full(opts, selected, full):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(opts.out / "figures" / "sup_loss.svg"))

    monkeypatch.setattr(reproduce, "execute", full)
    result = CliRunner().invoke(reproduce.cli, ["--smoke", "--only", "sup", "--data-dir", str(tiny_data),
                                                "--out", str(tmp_path / "out"), "--checkpoints", str(tmp_path / "ckpt")])
    assert_one_line_error(result, "No space left on device: ", "sup_loss.svg", "finished sections are saved")


def test_an_output_pdf_that_is_a_folder_is_refused_before_training(tiny_data, tmp_path):
    """report.pdf being a folder is a one-line error before anything is computed or written."""
    out = tmp_path / "out"
    (out / "report.pdf").mkdir(parents=True)
    (out / ".lock").touch()  # the output folder of an earlier run, so the folder itself is accepted
    result = CliRunner().invoke(reproduce.cli, ["--smoke", "--only", "sup", "--data-dir", str(tiny_data),
                                                "--out", str(out), "--checkpoints", str(tmp_path / "ckpt")])
    assert_one_line_error(result, f"{out / 'report.pdf'}", "not a file")
    assert not (out / "results.json").exists()


def test_output_closed_by_its_reader_exits_141_quietly(tmp_path, monkeypatch):
    """`--list | head -1`: the reader goes away; the exit status is SIGPIPE's 141 (not a mismatch's 1), and nothing is printed."""
    def closed(opts):
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))

    monkeypatch.setattr(reproduce, "list_sections", closed)
    result = invoke("--list", "--out", str(tmp_path / "out"))
    assert result.exit_code == 141 and result.stderr == ""


def test_a_corrupt_registry_outside_the_repository_suggests_no_git_checkout(tmp_path):
    """A corrupt results.json that git does not track is told to be moved away, never restored with git."""
    (tmp_path / "results.json").write_text("{")
    with pytest.raises(registry.RegistryError) as err:
        registry.read(tmp_path / "results.json")
    assert "git" not in str(err.value) and "move it away" in str(err.value)


def test_a_non_ascii_output_folder_under_a_c_locale_keeps_its_checkpoint_folder(tmp_path):
    """An output folder named in a non-UTF-8 locale (bytes kept as surrogates) gets a checkpoint folder, the same as under UTF-8,
    and is listed as an owner of it (no UnicodeEncodeError)."""
    from pipeline import checkpoints

    named = tmp_path / b"r\xc3\xa9sum\xc3\xa9".decode("ascii", "surrogateescape")  # how LC_ALL=C decodes "résumé"
    digest = checkpoints.default_folder(named).name.rsplit("-", 1)[1]
    assert digest == checkpoints.default_folder(tmp_path / "r\u00e9sum\u00e9").name.rsplit("-", 1)[1]
    store = checkpoints.CheckpointStore(tmp_path / "ckpt", named / "results.json")
    payload, record = store.encode("sup", "1" * 64, {"w": 1})
    store.write(payload, record)
    assert [os.fsencode(p) for p in store.owners()] == [os.fsencode(store.registry)]  # the same bytes on disk


def test_the_author_name_goes_into_the_readme_as_text():
    """A name with HTML and Markdown in it is escaped in the submission README: shown as typed, never markup."""
    text = document.markdown_text("<b>Ann</b> *O'Hara* [x](y)")
    assert "<" not in text.replace("\\<", "") and "*" not in text.replace("\\*", "") and "](" not in text


def test_a_name_too_long_for_the_byline_is_an_error(tmp_path, monkeypatch):
    """A 3,000-character name is refused with its length, not clipped at the page edge."""
    (tmp_path / "author.toml").write_text(f'name = "{"x" * 3000}"\nusername = "u"\n[ai_tools]\nused = false\ntext = ""\n')
    monkeypatch.setattr(document, "AUTHOR_FILE", tmp_path / "author.toml")
    with pytest.raises(RenderError, match="3000 characters"):
        document.author()
