# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""Section artifacts (model weights and the tensors later sections reuse), checksummed on disk.

A checkpoint is ``<dir>/<section>-<key>.pt`` holding ``{"section", "cache_key", "artifacts"}``; the
registry entry records its file name and SHA-256, so a missing, truncated or altered file is
detected before it is loaded, and one holding another section's artifacts when it is loaded. The
folder defaults to ``checkpoints/<name>-<hash of the resolved output folder>``, one per output
folder; it lists in ``.outputs`` the registries that have filed checkpoints in it, and a checkpoint
any of them points at is never pruned, nor any file but a checkpoint this package wrote.
"""
from __future__ import annotations

import hashlib
import io
import os
import stat
from pathlib import Path
from typing import Any

import torch

from .cache import ROOT
from .registry import RegistryError, atomic_write, read

OWNERS = ".outputs"  # the resolved results.json of every output folder that files checkpoints here


class CheckpointError(RuntimeError):
    """A checkpoint is missing, does not match its recorded checksum or holds another section: recompute."""


class CheckpointMissing(CheckpointError):
    """The recorded checkpoint file is absent (a fresh clone): its section's results still stand."""


class CheckpointBlocked(RuntimeError):
    """The checkpoint's path is taken by something that is not a file: a one-line error, before any training."""


def default_folder(out: Path) -> Path:
    """checkpoints/<last name>-<12 hex of the resolved output path>: readable, and one per output folder."""
    resolved = Path(out).resolve()
    return ROOT / "checkpoints" / f"{resolved.name}-{hashlib.sha256(os.fsencode(resolved)).hexdigest()[:12]}"


def file_name(section: str, key: str) -> str:
    return f"{section}-{key[:16]}.pt"


def written_here(path: Path, section: str) -> bool:
    """Whether ``path`` is a regular file (not a link) holding a checkpoint of ``section`` under the cache key its
    name carries: one this package wrote, which pruning may delete (a user's file in the folder never is)."""
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            return False
        saved = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not a checkpoint: torch raises RuntimeError, UnpicklingError, EOFError...
        return False
    return (isinstance(saved, dict) and saved.get("section") == section and isinstance(saved.get("cache_key"), str)
            and path.name == file_name(section, saved["cache_key"]))


class CheckpointStore:
    def __init__(self, folder: Path, registry: Path):
        self.folder = Path(folder)
        self.registry = Path(registry).resolve()  # the results.json whose checkpoints this store writes

    def encode(self, section: str, key: str, artifacts: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        """The checkpoint's bytes and its record (file name and SHA-256); writes nothing."""
        buffer = io.BytesIO()
        torch.save({"section": section, "cache_key": key, "artifacts": artifacts}, buffer)
        payload = buffer.getvalue()
        return payload, {"file": file_name(section, key), "sha256": hashlib.sha256(payload).hexdigest()}

    def owners(self) -> list[Path]:
        path = self.folder / OWNERS
        # the paths as the file system names them (bytes): a non-UTF-8 locale does not change them
        return [Path(os.fsdecode(line)) for line in path.read_bytes().splitlines() if line] if path.is_file() else []

    def write(self, payload: bytes, record: dict[str, str]) -> None:
        owners = self.owners()
        if self.registry not in owners:
            atomic_write(self.folder / OWNERS, b"".join(os.fsencode(p) + b"\n" for p in [*owners, self.registry]))
        atomic_write(self.folder / record["file"], payload)

    def prune(self, section: str, record: dict[str, str] | None) -> None:
        """Delete the section's checkpoints that neither ``record`` nor the registry of any output filing
        here points at (run after the registry points at the new one); nothing when a registry is unreadable."""
        keep = {record["file"]} if record else set()
        for registry in self.owners():
            try:
                entries = read(registry)["sections"].values()
            except RegistryError:
                return
            keep |= {e["checkpoint"].get("file") for e in entries
                     if isinstance(e, dict) and isinstance(e.get("checkpoint"), dict)}
        for old in self.folder.glob(f"{section}-*.pt"):
            if old.name not in keep and written_here(old, section):
                old.unlink(missing_ok=True)

    def check(self, record: dict[str, str] | None) -> bytes:
        """The recorded file's bytes; CheckpointError unless it exists with the recorded checksum."""
        if record is None:
            raise CheckpointError("no checkpoint recorded")
        path = self.folder / record["file"]
        if path.exists() and not path.is_file():
            raise CheckpointBlocked(f"checkpoint {path} is a {'folder' if path.is_dir() else 'special file'}, "
                                    "not a file: move it away and rerun")
        if not path.is_file():
            raise CheckpointMissing(f"checkpoint {path} is missing")
        payload = path.read_bytes()
        if hashlib.sha256(payload).hexdigest() != record["sha256"]:
            raise CheckpointError(f"checkpoint {path} is corrupt (SHA-256 mismatch)")
        return payload

    def load(self, entry: dict[str, Any], section: str, device: torch.device) -> dict[str, Any]:
        """The checked artifacts of ``section``'s registry entry, read from disk once; CheckpointError when
        the file does not hold that section's artifacts for that cache key."""
        path = self.folder / (entry.get("checkpoint") or {}).get("file", "")
        payload = self.check(entry.get("checkpoint"))
        try:
            saved = torch.load(io.BytesIO(payload), map_location=device, weights_only=True)
        except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError... on foreign bytes
            raise CheckpointError(f"checkpoint {path} cannot be read ({type(err).__name__})") from None
        if not (isinstance(saved, dict) and set(saved) == {"section", "cache_key", "artifacts"}
                and isinstance(saved["artifacts"], dict)):
            raise CheckpointError(f"checkpoint {path} is not a checkpoint of this pipeline")
        if saved["section"] != section:
            raise CheckpointError(f"checkpoint {path} holds section {saved['section']}'s artifacts, not {section}'s")
        if saved["cache_key"] != entry["cache_key"]:
            raise CheckpointError(f"checkpoint {path} holds {section}'s artifacts of another configuration or code "
                                  "(cache key differs)")
        return saved["artifacts"]
