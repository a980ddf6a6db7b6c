"""What the registry holds about a run, as typed records: `RunRecord` and its live `Progress`.

A run is a training run ("head", "finetune"), a data job ("prepare": download and prepare a data source in
the worker) or an experiment on cached features: a learning-rate finder pass ("lr_find", its curve
in the run's folder) or a sweep ("sweep"), whose heads are its "member" runs (parent: the sweep);
the sweep's winner is promoted to a normal "head" run (parent: the sweep). An analysis job
("embedding", "label_issues") studies a finished training run (its parent). All share the queue,
progress, cancel and liveness. Only training runs (`trains`) keep a model: they are the runs a page
lists, follows, compares, evaluates, fine-tunes and exports.

The registry stores config, metrics and progress as JSON; these records are how every
other layer reads them (`record.train.image_size`, `record.live.epoch`), so no page or
command spells a JSON key.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from core.config import DataConfig, FinetuneConfig, TrainConfig, from_dict

TRAINING_KINDS = ("head", "finetune")
# A job of the worker that downloads and prepares a data source (config: its DataConfig only).
PREPARE = "prepare"
SWEEP, MEMBER, LR_FIND = "sweep", "member", "lr_find"
EXPERIMENT_KINDS = (SWEEP, LR_FIND)  # jobs of the queue that train heads but keep no model
# Jobs that study a finished training run (parent: that run) on its backbone features: the
# embedding map and the label-issue ranking; their results live in their own folder.
EMBEDDING, LABEL_ISSUES = "embedding", "label_issues"
ANALYSIS_KINDS = (EMBEDDING, LABEL_ISSUES)
RUN_KINDS = (*TRAINING_KINDS, PREPARE, *EXPERIMENT_KINDS, MEMBER, *ANALYSIS_KINDS)
STATUSES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE_STATUSES = ("queued", "running")
FINAL_STATUSES = ("done", "failed", "cancelled")


@dataclass(frozen=True)
class Progress:
    """A running run's live progress: a preparation stage (stage, done, total), then epochs and batches.

    Epochs are 1-based; `updated` is the unix time of the last report. A sweep reports which
    setting (`member`, 1-based, of `members`) trains in which run (`member_run`), and its epoch.
    """

    stage: str | None = None
    done: int | None = None
    total: int | None = None
    epoch: int | None = None
    epochs: int | None = None
    step: int | None = None
    steps: int | None = None
    member: int | None = None
    members: int | None = None
    member_run: int | None = None
    updated: float | None = None

    @classmethod
    def from_dict(cls, values: dict) -> Progress:
        return from_dict(cls, values)

    def to_dict(self) -> dict:
        """The fields that are set, as the registry stores them."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @property
    def training(self) -> bool:
        """Whether epochs have started (else the run is still preparing its data and model)."""
        return bool(self.steps)


@dataclass(frozen=True)
class RunRecord:
    """One run as stored in the registry (times are unix seconds)."""

    id: int
    kind: str
    parent: int | None
    status: str
    config: dict
    created: float
    started: float | None
    finished: float | None
    pid: int | None
    error: str | None
    metrics: dict  # final metrics: best_val_accuracy, test_accuracy, test_loss, ...
    progress: dict  # live progress as stored; read it typed as `live`
    cancel_requested: bool
    broken: str | None = None  # why a done run's saved model cannot be used (core.runs.health)

    @property
    def trains(self) -> bool:
        """Whether this run trains a model it keeps (data jobs, experiments and sweep members do not)."""
        return self.kind in TRAINING_KINDS

    @property
    def experiment(self) -> bool:
        """Whether this is an experiment on cached features: a sweep or a learning-rate finder pass."""
        return self.kind in EXPERIMENT_KINDS

    @property
    def active(self) -> bool:
        """Whether the run waits in the queue or is running."""
        return self.status in ACTIVE_STATUSES

    @property
    def data(self) -> DataConfig:
        """Where the run's images came from and how they were split."""
        return from_dict(DataConfig, self.config.get("data", {}))

    @property
    def train(self) -> TrainConfig:
        """The head-training settings (for a fine-tuning run: those of the head it started from)."""
        return from_dict(TrainConfig, self.config.get("train", {}))

    @property
    def finetune(self) -> FinetuneConfig | None:
        """The fine-tuning settings, or None for a head run."""
        values = self.config.get("finetune")
        return None if values is None else from_dict(FinetuneConfig, values)

    @property
    def live(self) -> Progress:
        """The live progress the training process reports."""
        return Progress.from_dict(self.progress)

    @property
    def shown_status(self) -> str:
        """The status to show a person: "broken" for a done run whose model is gone or damaged."""
        return "broken" if self.broken else self.status

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish; for a running run, from start until now."""
        if self.started is None:
            return None
        if self.finished is not None:
            return max(0.0, self.finished - self.started)
        if self.status == "running":
            return max(0.0, time.time() - self.started)
        return None

    def to_json(self) -> dict:
        """A JSON-ready summary: the columns plus headline metrics and duration."""
        return {
            "id": self.id,
            "kind": self.kind,
            "parent": self.parent,
            "status": self.status,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "duration": self.duration,
            "best_val_accuracy": self.metrics.get("best_val_accuracy"),
            "test_accuracy": self.metrics.get("test_accuracy"),
            "pid": self.pid,
            "error": self.error,
            "cancel_requested": self.cancel_requested,
            "broken": self.broken,
            "config": self.config,
            "metrics": self.metrics,
            "progress": self.progress,
        }
