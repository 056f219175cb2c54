# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""Cache keys: a section is fresh when its configuration, code, data, environment and upstream
sections are what produced its registry entry; otherwise ``stale_reasons`` says which changed.
"""
from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("config", "code", "data", "env", "upstream")


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def jsonable_config(cfg) -> dict:
    """A frozen dataclass as plain JSON (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def code_files(module: ModuleType) -> dict[str, str]:
    """SHA-256 of the module's source and of every ``experiments`` module it imports, transitively
    (``from experiments.lib import vae``, ``from experiments.lib.prob import x``, ``import experiments.lib.data``)."""
    todo, seen = [Path(module.__file__).resolve()], {}
    while todo:
        path = todo.pop()
        rel = path.relative_to(ROOT).as_posix()
        if rel in seen:
            continue
        source = path.read_bytes()
        seen[rel] = hashlib.sha256(source).hexdigest()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "experiments":
                todo += _module_files(node.module, [a.name for a in node.names])
            elif isinstance(node, ast.Import):
                todo += [f for a in node.names if a.name.split(".")[0] == "experiments" for f in _module_files(a.name, [])]
    return dict(sorted(seen.items()))


def _module_files(dotted: str, names: list[str]) -> list[Path]:
    """The source files that ``from dotted import names`` reads: the module itself, or the submodules named."""
    base = ROOT.joinpath(*dotted.split("."))
    if base.with_suffix(".py").is_file():
        return [base.with_suffix(".py")]
    return [base / f"{n}.py" for n in names if (base / f"{n}.py").is_file()]


@dataclass(frozen=True)
class CacheKey:
    parts: dict[str, str]  # part name -> hash
    files: dict[str, str]  # code file -> hash, so a stale reason can name the file

    @property
    def digest(self) -> str:
        return digest(self.parts)


def make_key(config: dict, files: dict[str, str], data: dict, env: dict, upstream: dict[str, str]) -> CacheKey:
    parts = {"config": digest(config), "code": digest(files), "data": digest(data),
             "env": digest(env), "upstream": digest(upstream)}
    return CacheKey(parts, files)


def machine(env: dict) -> str:
    """'Intel Xeon (cpu) with 1 thread': where and how numbers were computed, in words."""
    threads = env.get("threads")
    return f"{env.get('device_name')} ({env.get('device')}) with {threads} thread{'s' if threads != 1 else ''}"


def environment_change(old: dict, new: dict) -> str:
    """What differs between the environment a section was recorded in and this one, in plain words."""
    if (old.get("device_name"), old.get("device"), old.get("threads")) != (new.get("device_name"), new.get("device"), new.get("threads")):
        what = f"recorded on {machine(old)}; this run is on {machine(new)}"
    else:
        libs = [f"{lib} {old.get(lib)} -> {new.get(lib)}" for lib in sorted(set(old) | set(new)) if old.get(lib) != new.get(lib)]
        what = "recorded with other library versions (" + ", ".join(libs) + ")"
    return what + ": another CPU model, thread count or library rounds differently, so it reruns"


def stale_reasons(entry: dict | None, key: CacheKey, env: dict | None = None) -> list[str]:
    """Why a registry entry does not match the key (empty when it does); ``env``, this run's
    environment, lets the reason say what differs about the machine."""
    if entry is None:
        return ["no results yet"]
    if entry.get("cache_key") == key.digest:
        return []
    recorded = entry.get("key_parts", {})
    reasons = []
    for part in PARTS:
        if recorded.get(part) == key.parts[part]:
            continue
        if part == "code":
            old = entry.get("code_files", {})
            changed = sorted(f for f in set(old) | set(key.files) if old.get(f) != key.files.get(f))
            reasons.append("code changed: " + ", ".join(changed))
        elif part == "env" and env is not None and entry.get("env"):
            reasons.append(environment_change(entry["env"], env))
        else:
            reasons.append({"config": "configuration changed", "data": "data or splits changed",
                            "env": "library versions, device or threads changed",
                            "upstream": "an upstream section changed"}[part])
    return reasons or ["cache key changed"]
