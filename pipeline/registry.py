# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""``report/results.json``: every number and figure of every section, with provenance, and the lock
that gives one run at a time the output folder.

Layout: ``{"provenance": {...}, "sections": {name: entry}}``; an entry is described in
CONTRIBUTING.md. The file is replaced atomically (write a sibling, fsync, rename), so an
interrupted run leaves the previous version whole. Each entry is checked on load: one of the wrong
shape is kept in the file but treated as absent, with the reason (``Registry.problems``), until a
run replaces it. A run holds ``locked(folder)`` on its output folder for its whole length and
re-reads the registry before each commit, so two runs on one folder never drop each other's work.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from .cache import ROOT
from .entries import entry_problem, value_problem, values_problem

LOCK_FILE = ".lock"  # in the output folder (and the checkpoint folder): held by the running run


class RegistryError(RuntimeError):
    """results.json exists but cannot be read; the message says how to recover."""


def file_mode() -> int:
    """The permissions a new file gets under the user's umask (read back without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix."""
    atomic_write_all({Path(path): data})


def atomic_write_all(files: dict[Path, bytes]) -> None:
    """Write every file so that readers see the old files or the new ones: each is written whole to a temporary
    sibling first (a full disk fails there, naming the file, before any is replaced), then all are renamed (hold
    signals around the call for all or none). An OSError names the file it was writing."""
    temporaries: dict[Path, str] = {}
    try:
        for path, data in files.items():
            path = Path(path)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, temporaries[path] = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
                os.fchmod(fd, file_mode())  # mkstemp makes 0600; the outputs are as readable as any file the user writes
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as err:
                raise OSError(err.errno, err.strerror, str(path)) from None
        for path, tmp in temporaries.items():
            os.replace(tmp, path)
    except BaseException:
        for tmp in temporaries.values():
            Path(tmp).unlink(missing_ok=True)
        raise
    for parent in dict.fromkeys(Path(path).parent for path in files):
        folder = os.open(parent, os.O_RDONLY)
        try:
            os.fsync(folder)  # make the renames themselves durable
        finally:
            os.close(folder)


def remove_temporaries(folder: Path) -> list[Path]:
    """Delete what a killed ``atomic_write`` left in the folder and its subfolders (call under the lock); a
    symbolic link is never followed, so nothing outside the folder is touched."""
    leftovers = []
    for place in [Path(folder), *(p for p in Path(folder).iterdir() if p.is_dir() and not p.is_symlink())]:
        leftovers += [p for p in place.glob(".*.tmp") if stat.S_ISREG(p.lstat().st_mode)]
    for path in leftovers:
        path.unlink(missing_ok=True)
    return leftovers


@contextlib.contextmanager
def locked(folder: Path, say: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (flock on ``folder/.lock``) for the block; a second run waits
    for it with a message, then removes the temporary files an interrupted write left behind. A ``.lock``
    that is a symbolic link or not a regular file is an error (never followed, never created elsewhere)."""
    say = say or (lambda message: print(message, file=sys.stderr, flush=True))
    path = Path(folder) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, file_mode())
    except OSError as err:
        if err.errno != errno.ELOOP:
            raise
        raise RegistryError(f"{path} is a symbolic link; the lock is a file of the folder itself: remove the link") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise RegistryError(f"{path} is not a regular file; remove it and rerun")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting: another run is writing to {folder}; this one starts when it ends (Ctrl-C gives up)")
            fcntl.flock(fd, fcntl.LOCK_EX)
        leftovers = remove_temporaries(folder)
        if leftovers:
            say(f"removed {len(leftovers)} temporary file(s) left in {folder} by an interrupted run")
        yield
    finally:
        os.close(fd)  # closing releases the lock


def lookup(metrics: dict, dotted: str):
    """metrics["a"]["b"] for "a.b"; the last element of a per-epoch list; None when absent."""
    value: Any = metrics
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value[-1] if isinstance(value, list) and value else value


def dumps(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=True, allow_nan=False) + "\n").encode()


def encodable(value: Any) -> bool:
    """Whether ``dumps`` can write the value (no infinity or NaN)."""
    try:
        dumps(value)
    except ValueError:
        return False
    return True


def sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def read(path: Path) -> dict[str, Any]:
    """The registry file's contents; an empty registry when there is none; RegistryError when unusable."""
    if not path.exists():
        return {"provenance": {}, "sections": {}}
    def no_constants(name: str):
        raise ValueError(f"{name} is not a number JSON allows")

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO put there must not block the read
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise OSError("not a regular file")
            payload = f.read()
        loaded = json.loads(payload, parse_constant=no_constants)
        if not isinstance(loaded, dict) or not isinstance(loaded.get("sections"), dict):
            raise ValueError("no 'sections' object")
        if not all(isinstance(loaded.get(key, {}), dict) for key in ("provenance", "full_run")):
            raise ValueError("'provenance' or 'full_run' is not an object")
        if not isinstance(loaded.get("spread", {}), dict):
            raise ValueError("'spread' is not an object")
        for key, value in loaded.items():
            if key != "sections" and (problem := value_problem(value, key)):
                raise ValueError(f"its {problem}")
    except RecursionError:
        raise RegistryError(f"{path} is corrupt (nested too deeply); restore it with `git checkout -- {path}` "
                            "or move it away to start a new registry") from None
    except OSError as err:
        raise RegistryError(f"cannot read {path} ({err.strerror or err}): it must be a readable file; "
                            "move it away to start a new registry") from None
    except ValueError as err:
        raise RegistryError(
            f"{path} is corrupt ({err}); {restore(path)}move it away to start a new registry") from None
    return loaded


def restore(path: Path) -> str:
    """"restore it with `git checkout -- <path>` or ", where git tracks ``path`` (a committed output), else ""."""
    try:
        relative = Path(path).resolve().relative_to(ROOT)
        tracked = subprocess.run(["git", "ls-files", "--error-unmatch", "--", str(relative)], cwd=ROOT,
                                 capture_output=True).returncode == 0
    except (ValueError, OSError):
        return ""
    return f"restore it with `git checkout -- {relative}` or " if tracked else ""


class Registry:
    """The registry file of one output folder, read at start and again before each commit."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.reload()

    def reload(self) -> None:
        """Read the file again: another run may have committed since (call with the folder locked)."""
        self._adopt(read(self.path))

    def _adopt(self, data: dict[str, Any]) -> None:
        self.data = data
        self.invalid = {name: f"registry entry unusable: {problem}" for name, entry in data["sections"].items()
                        if (problem := entry_problem(entry))}

    @property
    def sections(self) -> dict[str, Any]:
        """The usable entries, by section name."""
        return {name: e for name, e in self.data["sections"].items() if name not in self.invalid}

    def valid_data(self) -> dict[str, Any]:
        """The registry without its unusable entries (what the templates see)."""
        return {**self.data, "sections": self.sections}

    def entry(self, name: str) -> dict[str, Any] | None:
        return self.sections.get(name)

    def recorded(self, name: str) -> bool:
        """Whether the file holds an entry for ``name``, usable or not."""
        return name in self.data["sections"]

    def problems(self, name: str) -> list[str]:
        """Why the recorded entry cannot be reused as it is, before its cache key is compared: an entry of
        the wrong shape, or a figure that is missing or not the one recorded (empty when none)."""
        if name in self.invalid:
            return [self.invalid[name]]
        entry, reasons = self.entry(name), []
        for fig in (entry or {}).get("figures", {}).values():
            path = self.path.parent / fig["file"]
            if not path.is_file():
                reasons.append(f"figure {fig['file']} is {'not a file' if path.exists() else 'missing'}")
            elif "sha256" not in fig:
                reasons.append(f"figure {fig['file']} has no recorded SHA-256 (an older registry)")
            elif sha256(path) != fig["sha256"]:
                reasons.append(f"figure {fig['file']} is not the one recorded (SHA-256 differs: changed since, "
                               "or written by an interrupted run)")
        return reasons

    def prepare(self, name: str, entry: dict[str, Any], provenance: dict[str, Any]) -> tuple[dict, bytes]:
        """The registry with one section's entry and the provenance replaced, and its bytes; writes
        nothing, so a value JSON cannot hold (NaN) fails before any file of the section is touched. An
        unusable entry of another section is kept unless it holds such a value (a hand-written 1e400 reads
        as infinity), which JSON cannot write back: that one is dropped."""
        if problem := values_problem(entry):
            raise ValueError(f"section {name}'s results cannot be recorded: {problem}")
        kept = {n: e for n, e in self.data["sections"].items() if n not in self.invalid or encodable(e)}
        data = {**self.data, "provenance": provenance, "sections": {**kept, name: entry}}
        return data, dumps(data)

    def write(self, data: dict[str, Any], payload: bytes) -> None:
        atomic_write(self.path, payload)
        self._adopt(data)

    def put_meta(self, key: str, value: Any) -> None:
        """Set a top-level record (such as the wall time of the last full run) and write the file."""
        self.reload()
        data = {**self.data, key: value}
        self.write(data, dumps(data))
