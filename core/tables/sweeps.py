"""The Training page's and the command line's views of experiments: a sweep's leaderboard, its curves.

A sweep's members are runs of kind "member" whose parent is the sweep (core.runs.records); the
leaderboard ranks them as the sweep chose its winner: by validation alone, the highest
validation accuracy of the weights a member kept, ties to the lower validation loss. The test
split is never used to rank. Plain Python (pandas): no Streamlit, no TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

from core.catalog.experiments import SWEEPABLE, describe_name
from core.runs.records import MEMBER, RunRecord
from core.runs.store import RunStore
from core.tables.runs import history_frame


def members_of(records: Iterable[RunRecord], sweep_id: int) -> list[RunRecord]:
    """The member runs of sweep `sweep_id`, in the order they trained."""
    return sorted((r for r in records if r.kind == MEMBER and r.parent == sweep_id), key=lambda r: r.id)


def latest(records: Iterable[RunRecord], kind: str) -> RunRecord | None:
    """The newest run of `kind` (SWEEP or LR_FIND), or None."""
    return max((r for r in records if r.kind == kind), key=lambda r: r.id, default=None)


def rank_key(member: RunRecord) -> tuple[bool, float, float, int]:
    """Sorts the best member first: done, then highest kept validation accuracy, then lowest loss."""
    accuracy, loss = member.metrics.get("best_val_accuracy"), member.metrics.get("best_val_loss")
    return (
        member.status != "done",
        -accuracy if accuracy is not None else math.inf,
        loss if loss is not None else math.inf,
        member.id,
    )


def member_label(member: RunRecord) -> str:
    """'setting 3': a member as its sweep numbers it."""
    return f"setting {member.config.get('sweep', {}).get('member', '?')}"


def swept_names(sweep: RunRecord) -> list[str]:
    """The settings a sweep varies, in SWEEPABLE's order."""
    varied = {name for setting in sweep.config.get("sweep", {}).get("settings", []) for name in setting}
    return [name for name in SWEEPABLE if name in varied]


def leaderboard_frame(sweep: RunRecord, members: list[RunRecord]) -> pd.DataFrame:
    """One row per member, best first: its swept settings, validation results, status, and the winner."""
    winner = sweep.metrics.get("winner_member")
    rows = []
    for place, member in enumerate(sorted(members, key=rank_key), start=1):
        train, m = member.train, member.metrics
        accuracy = m.get("best_val_accuracy")
        row = {"place": place, "setting": member_label(member)}
        row |= {describe_name(name): getattr(train, name) for name in swept_names(sweep)}
        row |= {
            "val accuracy %": None if accuracy is None else 100 * accuracy,
            "val loss": m.get("best_val_loss"),
            "epochs run": m.get("epochs_run"),
            "status": member.status,
            "winner": member.id == winner,
        }
        rows.append(row)
    return pd.DataFrame(rows)


def settings_frame(sweep: RunRecord, members: list[RunRecord]) -> pd.DataFrame:
    """The done members' swept settings and validation accuracy: one numeric column each."""
    done = [m for m in members if m.status == "done" and m.metrics.get("best_val_accuracy") is not None]
    names = swept_names(sweep)
    rows = [
        {describe_name(n): float(getattr(m.train, n)) for n in names}
        | {"val accuracy %": 100 * m.metrics["best_val_accuracy"]}
        for m in done
    ]
    return pd.DataFrame(rows, columns=[*(describe_name(n) for n in names), "val accuracy %"])


def members_curves(store: RunStore, members: list[RunRecord]) -> pd.DataFrame:
    """The members' validation curves (history_frame's long form), each named by its setting."""
    frame = history_frame(store, [m.id for m in members])
    frame = frame[frame["split"] == "validation"].copy()
    labels = {f"run {m.id}": member_label(m) for m in members}
    frame["run"] = frame["run"].map(labels)
    return frame


def sweep_progress(sweep: RunRecord) -> tuple[float, str]:
    """A running sweep's progress bar: (fraction done, 'Setting 3 of 12 · epoch 2 of 25')."""
    p = sweep.live
    if not p.members:
        stage = f": {p.stage} {p.done or 0} of {p.total}" if p.stage and p.total else ""
        return 0.0, f"Preparing the data and the cached features{stage}"
    epoch_part = (max((p.epoch or 1) - 1, 0) / p.epochs) if p.epochs else 0.0
    fraction = min(1.0, ((p.member or 1) - 1 + epoch_part) / p.members)
    text = f"Setting {p.member} of {p.members}"
    if p.epoch:
        text += f" · epoch {p.epoch} of {p.epochs}"
    return fraction, text
