"""The table of benchmarks/ui_latency.py: its targets, rows, percentiles and verdicts."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

TARGET_FIRST_S = 2.0
TARGET_SWITCH = (0.5, 1.0)  # p50, p95
TARGET_FIRST_PHOTO_S = 3.0
TARGET_LOADED_PHOTO_S = 1.0


@dataclass
class Row:
    """One line of the table: a measure, its typical and worst figure (seconds), target and verdict."""

    measure: str
    n: int
    typical: float  # the median (p50)
    worst: float  # p95 with 20 or more figures, else the maximum
    target: str = ""
    met: str = ""
    notes: str = ""


def percentile(values: list[float], q: int) -> float:
    """The q-th percentile (inclusive method; the maximum for q=100)."""
    if len(values) == 1 or q >= 100:
        return max(values)
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def verdict(ok: bool) -> str:
    return "yes" if ok else "MISS"


def timing_row(measure: str, seconds: list[float], target_s: float | None = None, notes: str = "") -> Row:
    """Median and worst (p95 from 20 figures on, else max); met when the median is within target."""
    worst = percentile(seconds, 95) if len(seconds) >= 20 else max(seconds)
    typical = statistics.median(seconds)
    met = verdict(typical <= target_s) if target_s is not None else ""
    target = f"≤ {target_s:g} s" if target_s is not None else ""
    return Row(measure, len(seconds), typical, worst, target, met, notes)


def switch_row(condition: str, seconds: list[float], notes: str) -> Row:
    """Page switches: met when p50 and p95 are both within target."""
    p50, p95 = percentile(seconds, 50), percentile(seconds, 95)
    ok = p50 <= TARGET_SWITCH[0] and p95 <= TARGET_SWITCH[1]
    target = f"p50 ≤ {TARGET_SWITCH[0]:g} s, p95 ≤ {TARGET_SWITCH[1]:g} s"
    return Row(f"2{condition}", len(seconds), p50, p95, target, verdict(ok), notes)


def render(rows: list[Row], header: list[str]) -> str:
    lines = [*header, "| measure | n | p50 | p95 (n ≥ 20) or max | target | met | notes |"]
    lines.append("|---|---|---|---|---|---|---|")
    for r in rows:
        figures = f"{r.typical:.2f} s | {r.worst:.2f} s"
        lines.append(f"| {r.measure} | {r.n} | {figures} | {r.target} | {r.met} | {r.notes} |")
    return "\n".join(lines)
