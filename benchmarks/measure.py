"""Measuring tools any PetLab benchmark can reuse: timed phases with peak memory, run timings, medians.

Nothing here imports TensorFlow or PetLab, so a benchmark of the dashboard can use it as well as the
training one. Progress goes to stderr through `log`, so that a benchmark's stdout is only its results.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

RSS_INTERVAL_S = 0.05  # how often PhaseLog samples VmRSS
WARMUP_CALLS = 5  # untimed calls of each function before interleaved_medians times them
TIMED_ROUNDS = 30  # timed rounds of interleaved_medians


def log(message: str) -> None:
    """Progress lines go to stderr so that stdout is only the results."""
    print(f"  {message}", file=sys.stderr, flush=True)


# -- memory and phases ----------------------------------------------------------------------------


def rss_mb() -> float:
    """This process's resident set size (VmRSS) in MB."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Phase:
    """One measured phase: wall time and memory."""

    name: str
    seconds: float = 0.0
    cpu_s: float = 0.0  # CPU time of the whole process (all threads) during the phase
    load: float = 0.0  # 1-minute load average at the end: other processes competing for the cores
    start_mb: float = 0.0
    peak_mb: float = 0.0


@dataclass
class PhaseLog:
    """Every phase in the order it ran."""

    phases: list[Phase] = field(default_factory=list)

    @contextlib.contextmanager
    def measure(self, name: str) -> Iterator[Phase]:
        """Time the block and sample VmRSS every RSS_INTERVAL_S in a background thread."""
        phase = Phase(name, start_mb=rss_mb())
        phase.peak_mb = phase.start_mb
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(RSS_INTERVAL_S):
                phase.peak_mb = max(phase.peak_mb, rss_mb())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        start, start_cpu = time.perf_counter(), time.process_time()
        try:
            yield phase
        finally:
            phase.seconds = time.perf_counter() - start
            phase.cpu_s = time.process_time() - start_cpu
            phase.load = os.getloadavg()[0]
            stop.set()
            sampler.join()
            phase.peak_mb = max(phase.peak_mb, rss_mb())
            self.phases.append(phase)
            log(
                f"{name}: {phase.seconds:.1f} s, CPU {phase.cpu_s:.1f} s, load {phase.load:.1f}, "
                f"peak {phase.peak_mb:.0f} MB"
            )


# -- runs and repeated calls ----------------------------------------------------------------------


@dataclass(frozen=True)
class RunTiming:
    """What one training run cost."""

    run_id: int
    wall_s: float
    cpu_s: float  # process CPU time, less sensitive than wall time to other processes on the machine
    fit_s: float  # sum of epoch times recorded in the registry
    train_s: float  # queue to model.keras saved: the run without its test-set evaluation
    epochs: int
    new_feature_files: int  # feature arrays written by this run (0: the cache was warm)


def mean_timing(runs: list[RunTiming]) -> RunTiming:
    """The mean of several timings of the same kind of run (figures only; the first run's id)."""
    values = [dataclasses.astuple(run) for run in runs]
    means = [statistics.fmean(column) for column in zip(*values, strict=True)]
    return RunTiming(runs[0].run_id, *means[1:5], int(means[5]), int(means[6]))


def interleaved_medians(
    calls: Mapping[str, Callable[[], Any]], rounds: int = TIMED_ROUNDS
) -> dict[str, float]:
    """Median wall time of each call after WARMUP_CALLS untimed calls of each.

    The calls take turns, round after round, so that load from other processes on the
    machine falls on all of them alike instead of on whichever happened to run then.
    """
    for call in calls.values():
        for _ in range(WARMUP_CALLS):
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


# -- the machine ----------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or what `platform` knows."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def machine_line(started: str, versions: Mapping[str, str]) -> str:
    """'machine: …' for a report's header: cores, CPU, the given library versions, Python, start time."""
    libraries = "".join(f"{name} {version}, " for name, version in versions.items())
    return (
        f"machine: {os.cpu_count()} CPU cores, {cpu_model()}, {libraries}"
        f"Python {platform.python_version()}, started {started}"
    )


def started_now() -> str:
    """The local time in the form reports print it: 2026-11-28 09:03 UTC."""
    return time.strftime("%Y-%m-%d %H:%M %Z")
