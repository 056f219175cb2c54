"""Section artifacts (model weights and the tensors later sections reuse), checksummed on disk.

A checkpoint is ``<dir>/<section>-<key>.pt``; the registry entry records its file name and
SHA-256, so a missing, truncated or altered file is detected before it is loaded.
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import torch

from .registry import atomic_write


class CheckpointError(RuntimeError):
    """A checkpoint is missing or does not match its recorded checksum."""


class CheckpointStore:
    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def encode(self, section: str, key: str, artifacts: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        """The checkpoint's bytes and its record (file name and SHA-256); writes nothing."""
        buffer = io.BytesIO()
        torch.save(artifacts, buffer)
        payload = buffer.getvalue()
        return payload, {"file": f"{section}-{key[:16]}.pt", "sha256": hashlib.sha256(payload).hexdigest()}

    def write(self, payload: bytes, record: dict[str, str]) -> None:
        atomic_write(self.folder / record["file"], payload)

    def prune(self, section: str, record: dict[str, str] | None) -> None:
        """Delete the section's checkpoints other than the recorded one (run after the registry points at it)."""
        for old in self.folder.glob(f"{section}-*.pt"):
            if record is None or old.name != record["file"]:
                old.unlink(missing_ok=True)

    def check(self, record: dict[str, str] | None) -> bytes:
        """The recorded file's bytes; CheckpointError unless it exists with the recorded checksum."""
        if record is None:
            raise CheckpointError("no checkpoint recorded")
        path = self.folder / record["file"]
        if not path.is_file():
            raise CheckpointError(f"checkpoint {path} is missing")
        payload = path.read_bytes()
        if hashlib.sha256(payload).hexdigest() != record["sha256"]:
            raise CheckpointError(f"checkpoint {path} is corrupt (SHA-256 mismatch)")
        return payload

    def load(self, record: dict[str, str] | None, device: torch.device) -> dict[str, Any]:
        """The checked artifacts, read from disk once."""
        return torch.load(io.BytesIO(self.check(record)), map_location=device, weights_only=True)
