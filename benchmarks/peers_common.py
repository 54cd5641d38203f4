"""What every part of the peer benchmark shares: clocks, peak memory, agreement, the machine.

A part (``peers_caching``, ``peers_patching``, ``peers_lens``, ``peers_sweep``) measures the same
work done by valuebias and by the tools a user would pick instead. Each method's measurement is a
``method(...)`` dict: ``tool``, ``route``, ``wall_s`` and ``cpu_s`` (process CPU seconds: every
thread of the process, the steadier number on a shared machine), ``rate`` (work per wall second,
in the part's ``unit``), optionally ``peak_rss_mib`` (the process's resident set during the work,
sampled every 5 ms, minus its size just before) and ``agreement`` (``agreement(...)``: the largest
difference from valuebias's values). The pure rules here are unit-tested
(``tests/benchmarks/test_peers_common.py``); nothing here is timed in a test.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import threading
import time
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

import numpy as np

# Packages whose versions every result file records (missing ones are recorded as None).
PACKAGES = (
    "torch", "transformers", "transformer-lens", "nnsight", "reward-lens", "h5py", "numpy",
    "accelerate", "valuebias",
)  # fmt: skip


def current_rss_mib() -> float:
    """Resident set size now (Linux ``/proc/self/statm``), MiB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


class Measured:
    """Context manager: wall and process CPU seconds of its body, and its peak RSS growth (MiB).

    A thread samples the RSS every ``every_s`` seconds while the body runs; ``peak_rss_mib`` is
    the highest sample minus the RSS on entry (so it counts what the work allocates, not the
    model weights loaded before it)."""

    def __init__(self, every_s: float = 0.005) -> None:
        self.every_s = every_s
        self.wall_s = self.cpu_s = self.peak_rss_mib = 0.0
        self.rss_before_mib = 0.0

    def __enter__(self) -> Measured:
        self.rss_before_mib = current_rss_mib()
        self._peak = self.rss_before_mib
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def _sample(self) -> None:
        while self._running:
            self._peak = max(self._peak, current_rss_mib())
            time.sleep(self.every_s)

    def __exit__(self, *exc) -> None:
        self.wall_s = time.perf_counter() - self._wall
        self.cpu_s = time.process_time() - self._cpu
        self._running = False
        self._thread.join()
        self._peak = max(self._peak, current_rss_mib())
        self.peak_rss_mib = self._peak - self.rss_before_mib


def agreement(reference, other, tolerance: float) -> dict:
    """How far ``other`` is from ``reference`` (same shape): the largest absolute difference, the
    largest difference relative to ``max(1, |reference|)`` (residual streams of SmolLM2 reach ~1e3,
    where float32 rounding alone is ~1e-4), and whether the relative one is within ``tolerance``.
    NaNs in the same places are equal; a NaN on one side only is a disagreement."""
    ref = np.asarray(reference, dtype=np.float64)
    oth = np.asarray(other, dtype=np.float64)
    if ref.shape != oth.shape:
        raise ValueError(f"shapes differ: {ref.shape} vs {oth.shape}")
    both_nan = np.isnan(ref) & np.isnan(oth)
    one_nan = np.isnan(ref) ^ np.isnan(oth)
    diff = np.where(both_nan, 0.0, np.abs(ref - oth))
    rel = diff / np.maximum(1.0, np.abs(np.nan_to_num(ref)))
    max_abs = float(np.nanmax(diff)) if diff.size else 0.0
    max_rel = float(np.nanmax(rel)) if rel.size else 0.0
    return {
        "max_abs_diff": max_abs,
        "max_rel_diff": max_rel,
        "nan_mismatches": int(one_nan.sum()),
        "tolerance": tolerance,
        "agrees": bool(max_rel <= tolerance and not one_nan.any()),
    }


def method(tool: str, route: str, clock: Measured, work: float, **extra) -> dict:
    """One method's measurement (see the module docstring); ``work`` counts the part's unit."""
    out = {
        "tool": tool,
        "route": route,
        "wall_s": round(clock.wall_s, 3),
        "cpu_s": round(clock.cpu_s, 3),
        "rate": work / clock.wall_s if clock.wall_s > 0 else float("inf"),
        "rate_cpu": work / clock.cpu_s if clock.cpu_s > 0 else float("inf"),
        "peak_rss_mib": round(clock.peak_rss_mib, 1),
    }
    out.update(extra)
    return out


def failed(tool: str, route: str, err: BaseException) -> dict:
    """A method that could not run: the exact reason goes into the results and the table."""
    return {"tool": tool, "route": route, "error": f"{type(err).__name__}: {err}"}


def machine(load_start: tuple[float, float, float] | None = None) -> dict:
    """CPU model, cores, memory, OS, and the load averages at the start (given) and now."""
    model = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = None
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        first = meminfo.read_text().splitlines()[0].split()
        mem = round(int(first[1]) / 2**20, 1)
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "memory_gib": mem,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_start": list(load_start) if load_start else None,
        "load_average_end": list(os.getloadavg()),
    }


def versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each package (None when it is not installed)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def write_json(path: Path, payload: dict) -> None:
    """A part's result for the parent process (plain write: a temporary file of the run)."""
    path.write_text(json.dumps(payload, indent=1, default=float))


def _agreement_text(entry: dict) -> str:
    """One table cell: the largest difference from valuebias (each named check, if several)."""
    found = entry.get("agreement")
    if not found:
        return "reference" if entry.get("tool") == "valuebias" else ""
    checks = {"": found} if "max_abs_diff" in found else found
    cells = []
    for name, check in checks.items():
        if not isinstance(check, dict) or "max_abs_diff" not in check:
            continue
        verdict = "ok" if check["agrees"] else "DIFFERS"
        cells.append(f"{name + ' ' if name else ''}{check['max_abs_diff']:.2g} {verdict}")
    return "; ".join(cells)


def _reference(part: dict, entry: dict) -> dict | None:
    """valuebias's fastest method on the same work (and, for the sweep, the same dtype)."""
    ours = [
        m
        for m in part["methods"]
        if m.get("tool") == "valuebias"
        and "error" not in m
        and m.get("dtype") == entry.get("dtype")
    ]
    return max(ours, key=lambda m: m["rate"]) if ours else None


def comparison(part: dict, entry: dict) -> tuple[str, list[str]]:
    """(valuebias's speed against this peer, the measures on which the peer is ahead).

    Speed: the rate of valuebias's fastest method over the peer's (wall time; also CPU time).
    A peer is ahead on ``speed`` / ``CPU time`` when its rate is higher, on ``memory`` when its
    peak RSS growth is lower by more than 5 MiB and 10 %."""
    if entry.get("tool") == "valuebias" or "error" in entry:
        return "", []
    ref = _reference(part, entry)
    if ref is None:
        return "no valuebias reference", []
    ratio = ref["rate"] / entry["rate"]
    ahead = []
    if entry["rate"] > ref["rate"]:
        ahead.append("speed")
    if entry.get("rate_cpu", 0) > ref.get("rate_cpu", float("inf")):
        ahead.append("CPU time")
    ours_mem, peer_mem = ref.get("peak_rss_mib"), entry.get("peak_rss_mib")
    if ours_mem is not None and peer_mem is not None:
        if ours_mem - peer_mem > max(5.0, 0.1 * ours_mem):
            ahead.append("memory")
    text = f"valuebias {ratio:.1f}x faster" if ratio >= 1 else f"PEER {1 / ratio:.1f}x faster"
    return text, ahead


def table(parts: dict[str, dict]) -> str:
    """The Markdown table of every part: one row per method, ratios against valuebias."""
    head = (
        "| work | tool | route | wall s | rate | peak MiB | agreement with valuebias "
        "| valuebias vs peer | peer ahead on |\n|---|---|---|---|---|---|---|---|---|"
    )
    rows = [head]
    for part in parts.values():
        if "error" in part:
            rows.append(f"| {part['work']} | | | | | | failed: {part['error']} | | |")
            continue
        for entry in part["methods"]:
            if "error" in entry:
                rows.append(
                    f"| {part['work']} | {entry['tool']} | {entry['route']} | | | | "
                    f"could not run: {entry['error']} | | |"
                )
                continue
            text, ahead = comparison(part, entry)
            rows.append(
                f"| {part['work']} | {entry['tool']} | {entry['route']} | {entry['wall_s']:.2f} "
                f"| {entry['rate']:.3g} {part['unit']} | {entry.get('peak_rss_mib', '')} "
                f"| {_agreement_text(entry)} | {text} | {', '.join(ahead) or '-'} |"
            )
    return "\n".join(rows)
