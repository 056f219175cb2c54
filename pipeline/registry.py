"""``report/results.json``: every number and figure of every section, with provenance.

Layout: ``{"provenance": {...}, "sections": {name: entry}}``; an entry is described in
CONTRIBUTING.md. The file is replaced atomically (write a sibling, fsync, rename), so an
interrupted run leaves the previous version whole.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


class RegistryError(RuntimeError):
    """results.json exists but cannot be read; the message says how to recover."""


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # make the rename itself durable
    finally:
        os.close(folder)


def lookup(metrics: dict, dotted: str):
    """metrics["a"]["b"] for "a.b"; the last element of a per-epoch list; None when absent."""
    value: Any = metrics
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value[-1] if isinstance(value, list) and value else value


def dumps(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=True, allow_nan=False) + "\n").encode()


class Registry:
    """The registry file of one output folder, loaded once, saved after each section."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.data: dict[str, Any] = {"provenance": {}, "sections": {}}
        if self.path.exists():
            try:
                loaded = json.loads(self.path.read_text())
                if not isinstance(loaded.get("sections"), dict):
                    raise ValueError("no 'sections' object")
            except (ValueError, AttributeError) as err:
                raise RegistryError(
                    f"{self.path} is corrupt ({err}); restore it with `git checkout -- {self.path}` "
                    f"or move it away to start a new registry") from None
            self.data = loaded

    @property
    def sections(self) -> dict[str, Any]:
        return self.data["sections"]

    def entry(self, name: str) -> dict[str, Any] | None:
        return self.sections.get(name)

    def prepare(self, name: str, entry: dict[str, Any], provenance: dict[str, Any]) -> tuple[dict, bytes]:
        """The registry with one section's entry and the provenance replaced, and its bytes; writes
        nothing, so a value JSON cannot hold (NaN) fails before any file of the section is touched."""
        data = {**self.data, "provenance": provenance, "sections": {**self.sections, name: entry}}
        return data, dumps(data)

    def write(self, data: dict[str, Any], payload: bytes) -> None:
        atomic_write(self.path, payload)
        self.data = data

    def put_meta(self, key: str, value: Any) -> None:
        """Set a top-level record (such as the wall time of the last full run) and write the file."""
        data = {**self.data, key: value}
        self.write(data, dumps(data))
