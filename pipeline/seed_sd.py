# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""The report's error bars: the SD over seeds that ``--spread`` recorded for a number, where it applies.

A spread is used only for an entry computed with the configuration and size it was measured with,
the rule ``--verify`` applies (``verify.usable_spread``); otherwise there is no SD, never a stand-in.
"""
from __future__ import annotations

from .verify import usable_spread

# a difference between runs counts beyond this many SDs over seeds: near the 95% point (4.30) of Student's t with
# the 2 degrees of freedom of an SD from three seeds (the templates' ``seed_beyond``)
VERDICT_SDS = 4


def combined(*sds: float | None) -> float | None:
    """The SD of a sum or difference of independent parts, sqrt(s1^2 + s2^2 + ...); None when any part has none."""
    return None if any(s is None for s in sds) else sum(s * s for s in sds) ** 0.5


def seed_sd(registry: dict, section: str, key: str) -> float | list[float] | None:
    """The recorded SD over seeds of ``section``'s metric ``key`` (dotted path; a list, one SD per element,
    for a list metric), or None when the section has no entry, the spread does not match it or lacks the key."""
    entry = registry.get("sections", {}).get(section)
    record = usable_spread(registry, section, entry).get(key) if entry else None
    return record["sd"] if record else None


def seed_values(registry: dict, section: str, key: str) -> list | None:
    """The values of ``section``'s metric ``key`` for each seed of the spread (in the order of its ``seeds``), under
    the rule of ``seed_sd``: None when the section has no entry, the spread does not match it or lacks the key."""
    entry = registry.get("sections", {}).get(section)
    record = usable_spread(registry, section, entry).get(key) if entry else None
    return record["values"] if record else None
