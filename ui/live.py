"""What the Training page's live panel shows, read from the registry only when it changed.

The panel polls every second. Each poll asks the registry for its revision (one tiny
read, core.runs.store.Revision); the runs, the followed run's history and the figures
built from them are kept in the session and read or built again only when the part of
the registry they come from changed. An idle poll reads no run and builds no figure, so
the panel stays cheap with thousands of epochs and runs, and leaves the server free to
answer clicks. A running (or queued) sweep or learning-rate finder pass is followed like a run;
a sweep's members are not (the sweep's own progress names the setting and epoch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import plotly.graph_objects as go

from core.figures.curves import training_curves
from core.runs.records import RunRecord
from core.runs.store import Revision, RunStore
from core.tables.runs import CURVE_METRICS, current_run, history_frame, runs_csv, runs_frame


@dataclass
class LiveView:
    """The panel's content as of `revision`: every run, the followed one and its curves, the runs table."""

    revision: Revision | None = None
    records: list[RunRecord] = field(default_factory=list)
    followed: RunRecord | None = None
    figures: dict[str, go.Figure] = field(default_factory=dict)
    table: pd.DataFrame | None = None
    table_csv: str = ""
    curves_of: tuple[int, int] | None = None  # (run id, epochs revision) the figures were built for

    def refresh(self, store: RunStore) -> set[str]:
        """Bring the view up to date; return what changed: a subset of {"runs", "progress", "epochs"}."""
        now, before = store.revision(), self.revision
        changed = set()
        if before is None or (now.runs, now.stale) != (before.runs, before.stale):
            self.records = store.list()
            self.table = runs_frame(self.records)
            self.table_csv = runs_csv(self.records)
            changed |= {"runs", "progress"}
        elif now.progress != before.progress:
            self._reload_running(store)
            changed.add("progress")
        self.followed = followed_run(self.records)
        if self.followed is not None and (self.followed.id, now.epochs) != self.curves_of:
            self._build_curves(store, self.followed.id)
            self.curves_of = (self.followed.id, now.epochs)
            changed.add("epochs")
        self.revision = now
        return changed

    def _reload_running(self, store: RunStore) -> None:
        """Only live progress moved: read the running runs again, nothing else."""
        self.records = [store.get(r.id) if r.status == "running" else r for r in self.records]

    def _build_curves(self, store: RunStore, run_id: int) -> None:
        frame = history_frame(store, [run_id])
        self.figures = (
            {}
            if frame.empty
            else {m: training_curves(frame, m, "split", m.capitalize()) for m in CURVE_METRICS}
        )


def followed_run(records: list[RunRecord]) -> RunRecord | None:
    """The running run or experiment, else the oldest queued one, else the newest training run."""
    for status in ("running", "queued"):
        matching = [r for r in records if r.status == status and (r.trains or r.experiment)]
        if matching:
            return min(matching, key=lambda r: r.id)
    return current_run(records)
