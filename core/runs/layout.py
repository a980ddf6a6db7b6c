"""Where a run's files live: the one owner of every path and file name under `<workspace>/runs/<ID>/`.

    runs/<ID>/
        model.keras          the full trained model (backbone + head)
        class_names.json     the output order of the model's classes
        config.json          kind, parent and the run's full config
        history.json         per-epoch metrics (also in the registry)
        history.csv          the same, written by Keras' CSVLogger while training
        evaluation.json      the test-split report (core.inference.evaluate)
        tensorboard/         TensorBoard logs
        backup/              while training: the per-epoch backup a resume starts from
        export/              exported models and labels.txt (core.inference.export)

Nothing here touches the disk except `RunPaths.create`; building a path never makes a folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DB_NAME = "runs.db"
RUNS_DIR = "runs"


@dataclass(frozen=True)
class RunPaths:
    """The paths of one run's artifacts (`RunPaths.of(workspace, run_id)`)."""

    folder: Path

    @classmethod
    def of(cls, workspace: Path, run_id: int) -> RunPaths:
        """The paths of run `run_id` in `workspace`."""
        return cls(Path(workspace) / RUNS_DIR / str(int(run_id)))

    @property
    def model(self) -> Path:
        return self.folder / "model.keras"

    @property
    def class_names(self) -> Path:
        return self.folder / "class_names.json"

    @property
    def config(self) -> Path:
        return self.folder / "config.json"

    @property
    def history(self) -> Path:
        return self.folder / "history.json"

    @property
    def history_csv(self) -> Path:
        return self.folder / "history.csv"

    @property
    def evaluation(self) -> Path:
        return self.folder / "evaluation.json"

    @property
    def tensorboard(self) -> Path:
        return self.folder / "tensorboard"

    @property
    def backup(self) -> Path:
        """The per-epoch backup of a training run: keras/, early_stopping.json, best.npz."""
        return self.folder / "backup"

    @property
    def exports(self) -> Path:
        return self.folder / "export"

    def create(self) -> Path:
        """Make the run folder (and its parents) if missing; returns it. OSError if it cannot be made."""
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder
