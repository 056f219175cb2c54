# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""What makes a registry entry unusable: its shape (CONTRIBUTING.md describes it) and its values (finite
numbers, short texts). An unusable entry is treated as absent, with the reason, never a traceback.
"""
from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

SHA256 = re.compile(r"[0-9a-f]{64}")
FIGURE_FILE = re.compile(r"figures/[A-Za-z0-9_.-]+\.(svg|png)")
CHECKPOINT_FILE = re.compile(r"[A-Za-z0-9_.-]+\.pt")
LONGEST_TEXT = 300  # characters of any string in the registry (the longest the pipeline writes has about 80)


def value_problem(value: Any, where: str) -> str | None:
    """Why a JSON value cannot be used (None when it can): a number that is not finite (JSON's 1e400 reads as
    infinity), an integer beyond a float, a string longer than LONGEST_TEXT. ``where`` names it, never
    its contents, so the message stays one short line."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        items = ()
    for key, item in items:
        if len(key) > LONGEST_TEXT:
            return f"{where} has a key of {len(key)} characters"
        if (problem := value_problem(item, f"{where}.{key}"[:80])):
            return problem
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where} is not a finite number"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2 ** 1023:
        return f"{where} is beyond the range of a float"
    if isinstance(value, str) and len(value) > LONGEST_TEXT:
        return f"{where} is a text of {len(value)} characters"
    return None


def values_problem(entry: dict) -> str | None:
    """Why an entry's values cannot be used (``value_problem``)."""
    for key, value in entry.items():
        if problem := value_problem(value, key):
            return f"its {problem}"
    return None


def entry_problem(entry: Any) -> str | None:
    """Why a registry entry cannot be used (None when it has the shape CONTRIBUTING.md describes and its
    values are finite numbers and short texts)."""
    if not isinstance(entry, dict):
        return f"the entry is a {type(entry).__name__}, not an object"
    for key, kind in (("metrics", dict), ("figures", dict), ("key_parts", dict), ("code_files", dict),
                      ("cache_key", str), ("title", str), ("finished_at", str), ("wall_time_s", (int, float))):
        if not isinstance(entry.get(key), kind) or (kind != str and isinstance(entry[key], bool)):
            return f"its {key!r} is missing or of the wrong type"
    for key in ("config", "env", "provenance"):
        if key in entry and not isinstance(entry[key], dict):
            return f"its {key!r} is not an object"
    if problem := values_problem(entry):
        return problem
    if not (0 <= entry["wall_time_s"] and SHA256.fullmatch(entry["cache_key"])):
        return "its 'wall_time_s' is negative or its 'cache_key' is not a SHA-256"
    if not all(isinstance(v, str) for part in ("key_parts", "code_files") for v in entry[part].values()):
        return "its 'key_parts' or 'code_files' holds something other than hashes"
    try:
        dt.datetime.fromisoformat(entry["finished_at"])
    except ValueError:
        return "its 'finished_at' is not an ISO time"
    for name, fig in entry["figures"].items():
        if not (isinstance(fig, dict) and isinstance(fig.get("file"), str) and FIGURE_FILE.fullmatch(fig["file"])
                and fig.get("kind") in ("svg", "png") and isinstance(fig.get("module"), str)):
            return f"its figure {name!r} is not a record with a file under figures/, a kind and a module"
        if fig["kind"] == "png" and not all(isinstance(fig.get(k), list) for k in ("row_labels", "col_labels")):
            return f"its digit grid {name!r} has no row and column labels"
        if "sha256" in fig and not (isinstance(fig["sha256"], str) and SHA256.fullmatch(fig["sha256"])):
            return f"its figure {name!r} has a malformed SHA-256"
    checkpoint = entry.get("checkpoint")
    if checkpoint is not None and not (
            isinstance(checkpoint, dict) and isinstance(checkpoint.get("file"), str)
            and CHECKPOINT_FILE.fullmatch(checkpoint["file"]) and isinstance(checkpoint.get("sha256"), str)
            and SHA256.fullmatch(checkpoint["sha256"])):
        return "its checkpoint is not a record of a file name and a SHA-256"
    return None
