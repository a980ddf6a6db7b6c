"""Progress reporting shared by every long operation.

A progress callback takes (stage, done, total): `stage` is a short human label
("decoding train images"), `total` may be None when unknown. The command line
prints a bar on stderr; the dashboard maps the same calls onto `st.progress`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

ProgressCallback = Callable[[str, int, "int | None"], None]


def no_progress(stage: str, done: int, total: int | None) -> None:
    """A progress callback that shows nothing."""


class TerminalProgress:
    """Draws a one-line progress bar on stderr, at most every 0.2 s per stage."""

    def __init__(self, stream=None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self._last = 0.0
        self._stage: str | None = None

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        finished = total is not None and done >= total
        if stage == self._stage and not finished and now - self._last < 0.2:
            return
        self._stage, self._last = stage, now
        if total:
            filled = int(self.width * min(done, total) / total)
            bar = "#" * filled + "-" * (self.width - filled)
            line = f"\r{stage}: [{bar}] {done}/{total}"
        else:
            line = f"\r{stage}: {done}"
        self.stream.write(line)
        if finished:
            self.stream.write("\n")
        self.stream.flush()
