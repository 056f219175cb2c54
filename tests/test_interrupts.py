"""Faults lose nothing: SIGINT and SIGTERM at several points leave the outputs whole and resumable."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.interrupts import Interrupted, critical, interruptible

LAUNCH = Path(__file__).with_name("launch.py")


def snapshot(*folders: Path) -> dict[str, bytes]:
    """Every file under the folders, by relative path; temporary files included, so leftovers show."""
    return {str(p.relative_to(f.parent)): p.read_bytes() for f in folders if f.exists() for p in sorted(f.rglob("*"))
            if p.is_file()}


def start(tiny_root, out: Path, *args, block: str | None = None) -> subprocess.Popen:
    root, sums = tiny_root
    env = {**os.environ, "TEST_MNIST_MD5": json.dumps(sums), "PYTHONUNBUFFERED": "1"}
    if block:
        env["TEST_BLOCK_SECTION"] = block
    cmd = [sys.executable, str(LAUNCH), "--smoke", "--data-dir", str(root), "--out", str(out),
           "--checkpoints", str(out.parent / "ckpt"), *args]
    return subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)


def interrupt_at(proc: subprocess.Popen, section: str, sig: int) -> tuple[int, str]:
    """Wait for the blocked section to finish computing, send ``sig``, return exit code and stderr."""
    seen, deadline = [], time.monotonic() + 180
    for line in proc.stderr:
        seen.append(line)
        if f"[test] {section} computed" in line:
            proc.send_signal(sig)
            break
        assert time.monotonic() < deadline, "".join(seen)
    _, rest = proc.communicate(timeout=60)
    return proc.returncode, "".join(seen) + rest


@pytest.mark.parametrize("sig, sections, section, finished", [
    (signal.SIGINT, "sup,q1", "sup", set()),
    (signal.SIGTERM, "sup,q1,q2", "q1", {"sup"}),
    (signal.SIGINT, "q1,q2,q4", "q4", {"q1", "q2"}),
])
def test_interrupted_run_keeps_finished_sections_and_resumes(tiny_root, tmp_path, sig, sections, section, finished):
    """An interrupted run (one section at a time) exits 130/143, keeps exactly the finished sections, and the rerun does only the rest."""
    out = tmp_path / "report"
    code, err = interrupt_at(start(tiny_root, out, "--only", sections, "--jobs", "1", block=section), section, sig)
    assert code == 128 + sig, err
    assert "interrupted by" in err and "Traceback" not in err
    recorded = json.loads((out / "results.json").read_text())["sections"] if finished else {}
    assert set(recorded) == finished
    assert not [p for p in snapshot(out, tmp_path / "ckpt") if ".tmp" in p]
    rerun = start(tiny_root, out, "--only", sections)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert all(f"[{name}] fresh" in err for name in finished)
    assert f"[{section}] running" in err


def test_interrupted_forced_rerun_changes_nothing(tiny_root, tmp_path):
    """SIGTERM while a forced rerun of the first section computes leaves report/ and checkpoints byte for byte."""
    out = tmp_path / "report"
    first = start(tiny_root, out, "--only", "sup,q1")
    assert first.wait(timeout=300) == 0
    before = snapshot(out, tmp_path / "ckpt")
    code, err = interrupt_at(start(tiny_root, out, "--only", "sup,q1", "--force", "--jobs", "1", block="sup"), "sup",
                             signal.SIGTERM)
    assert code == 143, err
    assert snapshot(out, tmp_path / "ckpt") == before


def wait_for(proc: subprocess.Popen, *fragments: str) -> tuple[list[str], int]:
    """Read stderr until every fragment has appeared; the lines, and the pid a blocked worker announced."""
    seen, deadline = [], time.monotonic() + 180
    for line in proc.stderr:
        seen.append(line)
        if all(any(f in s for s in seen) for f in fragments):
            break
        assert time.monotonic() < deadline, "".join(seen)
    pid = next(int(s.split(" in ")[-1]) for s in seen if "[test]" in s and " computed in " in s)
    return seen, pid


def gone(pid: int, timeout: float = 10.0) -> bool:
    """Whether the process has exited (a zombie awaiting its reaper counts as exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith(("Z", "X")):
                return True
        except (FileNotFoundError, IndexError):
            return True
        time.sleep(0.1)
    return False


def test_interrupted_pool_keeps_the_finished_section_and_stops_its_workers(tiny_root, tmp_path):
    """SIGTERM while q1 computes in a worker and sup has finished beside it: exit 143, sup kept, the worker ends."""
    out = tmp_path / "report"
    proc = start(tiny_root, out, "--only", "sup,q1", "--jobs", "2", block="q1")
    seen, worker = wait_for(proc, "[sup] done", "[test] q1 computed")
    assert worker != proc.pid
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 143, "".join(seen) + rest
    assert set(json.loads((out / "results.json").read_text())["sections"]) == {"sup"}
    assert not [p for p in snapshot(out, tmp_path / "ckpt") if ".tmp" in p]
    assert gone(worker)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_workers_die_with_a_killed_parent(tiny_root, tmp_path):
    """SIGKILL to the parent (no chance to clean up) still ends its worker processes."""
    proc = start(tiny_root, tmp_path / "report", "--only", "q1", "--jobs", "2", block="q1")
    _, worker = wait_for(proc, "[test] q1 computed")
    proc.kill()
    proc.communicate(timeout=60)
    assert gone(worker)


def test_signal_during_the_commit_completes_the_section(tiny_data, tmp_path, monkeypatch):
    """SIGTERM while a section's files are being written: the section is written whole, then the run stops (143)."""
    from click.testing import CliRunner

    import reproduce
    from pipeline import registry

    write = registry.Registry.write

    def write_after_a_signal(self, data, payload):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives after the figures and checkpoint, before the registry
        write(self, data, payload)

    monkeypatch.setattr(registry.Registry, "write", write_after_a_signal)
    out = tmp_path / "report"
    result = CliRunner().invoke(reproduce.cli, ["--smoke", "--only", "sup,q1", "--jobs", "1", "--data-dir", str(tiny_data),
                                                "--out", str(out), "--checkpoints", str(tmp_path / "ckpt")])
    assert result.exit_code == 143, result.output
    entry = json.loads((out / "results.json").read_text())["sections"]["sup"]
    assert set(json.loads((out / "results.json").read_text())["sections"]) == {"sup"}
    assert (tmp_path / "ckpt" / entry["checkpoint"]["file"]).is_file()
    assert all((out / f["file"]).is_file() for f in entry["figures"].values())


def test_a_signal_inside_a_critical_section_waits_for_its_end():
    """SIGINT during a critical block is held until the block ends, then raised as Interrupted."""
    done = []
    with pytest.raises(Interrupted) as err, interruptible():
        with critical():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            done.append("block finished")
    assert done == ["block finished"] and err.value.signum == signal.SIGINT


def test_a_signal_outside_a_critical_section_stops_at_once():
    """SIGTERM outside a critical block raises Interrupted immediately."""
    with pytest.raises(Interrupted) as err, interruptible():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        pytest.fail("the signal did not interrupt")
    assert err.value.signum == signal.SIGTERM

