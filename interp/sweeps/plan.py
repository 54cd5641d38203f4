"""A sweep cut into content-addressed work units: what each unit computes and its address.

A unit is one prompt's candidates ``[start, stop)`` under one sweep identity (model identity,
responses, settings that change a value: dtype, batch size, unit size, tool version ...). Its
address is the sha256 of all of that, so a unit finished by any worker, in any earlier run of the
same command, is recognised and never computed again, while a change to anything that would
change its rows gives new addresses. The plan's digest (over the identity and every unit
address) names the whole sweep.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from interp.provenance import json_safe


def _sha(payload: Any) -> str:
    text = json.dumps(json_safe(payload), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class WorkUnit:
    """Prompt ``prompt`` (index into the plan's prompts), candidates ``[start, stop)``."""

    uid: str
    index: int
    prompt: int
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class SweepPlan:
    """Every unit of a sweep in output order (prompt-major, candidates ascending)."""

    identity: dict
    units: tuple[WorkUnit, ...]
    digest: str

    @property
    def n_candidates(self) -> int:
        return sum(u.size for u in self.units)


def plan_units(
    identity: dict, prompts: Sequence[dict], n_candidates: int, unit_size: int
) -> SweepPlan:
    """Units of ``unit_size`` candidates for every prompt (``prompts``: JSON-able descriptions,
    e.g. key, text, framing). ``identity``: everything else that determines a unit's rows."""
    if unit_size < 1:
        raise ValueError("unit_size must be at least 1")
    base = _sha(identity)
    units = []
    for p, prompt in enumerate(prompts):
        for start in range(0, n_candidates, unit_size):
            stop = min(n_candidates, start + unit_size)
            uid = _sha([base, prompt, start, stop])[:24]
            units.append(WorkUnit(uid, len(units), p, start, stop))
    digest = _sha([base, [u.uid for u in units]])[:24]
    return SweepPlan(identity=dict(identity), units=tuple(units), digest=digest)


def plan_items(identity: dict, items: Sequence[dict]) -> SweepPlan:
    """One unit per item description (e.g. a patching sweep's item groups, by their ids' digest
    and size); ``WorkUnit.prompt`` is the item's index, ``[start, stop)`` is ``[0, n)``."""
    base = _sha(identity)
    units = tuple(
        WorkUnit(_sha([base, item])[:24], i, i, 0, int(item.get("n", 1)))
        for i, item in enumerate(items)
    )
    digest = _sha([base, [u.uid for u in units]])[:24]
    return SweepPlan(identity=dict(identity), units=units, digest=digest)
