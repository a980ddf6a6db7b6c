"""Where a run's files live: the one owner of every path and file name under `<workspace>/runs/<ID>/`.

    runs.db                  the run registry (core.runs.store)
    runs/<ID>/
        model.keras          the full trained model (backbone + head)
        model.tflite         the same model in float32 for LiteRT (answers before TensorFlow has loaded)
        class_names.json     the output order of the model's classes
        config.json          kind, parent and the run's full config
        history.json         per-epoch metrics (also in the registry)
        history.csv          the same, written by Keras' CSVLogger while training
        evaluation.json      the test-split report (core.inference.evaluate)
        report.html          the run's self-contained HTML report (core.reports)
        tensorboard/         TensorBoard logs
        lr_curve.csv         a learning-rate finder job's curve: lr, loss (smoothed), raw_loss
        embedding.npz        an embedding job's 2-D map of its parent run's images (core.embeddings)
        label_issues.csv     a label-issues job's ranking, and out_of_fold.npz its probabilities
        backup/              while training: the per-epoch backup a resume starts from
        export/              exported models and labels.txt (core.inference.export):
            model.keras, savedmodel/, model.tflite, model_quantized.tflite, labels.txt

Nothing here touches the disk except `RunPaths.create`; building a path never makes a folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from core.errors import PetLabError

DB_NAME = "runs.db"
RUNS_DIR = "runs"
# The export formats and the file (or folder) each writes in export/, float32 unless quantized.
EXPORT_FILES = {"keras": "model.keras", "savedmodel": "savedmodel", "tflite": "model.tflite"}
EXPORT_FORMATS = tuple(EXPORT_FILES)
QUANTIZED_TFLITE_FILE = "model_quantized.tflite"
LABELS_FILE = "labels.txt"


def registry_file(workspace: Path) -> Path:
    """The SQLite file of a workspace's run registry."""
    return Path(workspace) / DB_NAME


def runs_folder(workspace: Path) -> Path:
    """The folder holding every run's folder (TensorBoard's --logdir for all runs)."""
    return Path(workspace) / RUNS_DIR


@dataclass(frozen=True)
class RunPaths:
    """The paths of one run's artifacts (`RunPaths.of(workspace, run_id)`)."""

    folder: Path

    @classmethod
    def of(cls, workspace: Path, run_id: int) -> RunPaths:
        """The paths of run `run_id` in `workspace`."""
        return cls(runs_folder(workspace) / str(int(run_id)))

    @property
    def model(self) -> Path:
        return self.folder / "model.keras"

    @property
    def lite_model(self) -> Path:
        """The float32 LiteRT copy of model.keras (core.predictions.lite), written after it."""
        return self.folder / "model.tflite"

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
    def report(self) -> Path:
        """The run's self-contained HTML report (core.reports.run_report), opened offline in a browser."""
        return self.folder / "report.html"

    @property
    def lr_curve(self) -> Path:
        """The curve of a learning-rate finder job (core.training.lr_finder): CSV lr, loss, raw_loss."""
        return self.folder / "lr_curve.csv"

    @property
    def embedding(self) -> Path:
        """An embedding job's 2-D map of the parent run's images (core.embeddings)."""
        return self.folder / "embedding.npz"

    @property
    def label_issues(self) -> Path:
        """A label-issues job's ranked suspects, most suspect first (core.curation)."""
        return self.folder / "label_issues.csv"

    @property
    def out_of_fold(self) -> Path:
        """A label-issues job's out-of-fold predicted probabilities per image."""
        return self.folder / "out_of_fold.npz"

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

    @property
    def export_labels(self) -> Path:
        """labels.txt, written beside every export: the class names, one a line, in output order."""
        return self.exports / LABELS_FILE

    def export_model(self, fmt: str, quantize: bool = False) -> Path:
        """The exported model of format `fmt` (one of EXPORT_FORMATS); `quantize` is for tflite only."""
        name = QUANTIZED_TFLITE_FILE if fmt == "tflite" and quantize else EXPORT_FILES[fmt]
        return self.exports / name

    def create(self) -> Path:
        """Make the run folder (and its parents) if missing; returns it.

        PetLabError (one sentence) when it cannot be made: a full disk, a read-only
        workspace, or a file where the folder should be.
        """
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PetLabError(
                f"The run folder {self.folder} cannot be created ({exc.strerror or exc}); free disk space or "
                "make the workspace writable."
            ) from None
        return self.folder


# Inside the backup folder. The state's names are those Keras' BackupAndRestore used, which
# PetLab wrote before: a backup left by an earlier version still resumes.
STATE_DIR = "keras"
WEIGHTS_FILE = "latest.weights.h5"  # Keras saves weights only to a name ending in .weights.h5
EPOCH_FILE = "training_metadata.json"
EARLY_STOPPING_FILE = "early_stopping.json"
BEST_WEIGHTS_FILE = "best.npz"


@dataclass(frozen=True)
class RunBackup:
    """The files of a run's per-epoch backup (`RunPaths.backup`; gone once the run ends normally).

    After each finished epoch: the model's weights with the optimizer's state, that
    epoch's number, and the early-stopping state (best val_loss so far, its weights,
    patience used), so a resumed fit continues as an uninterrupted one would.
    """

    folder: Path

    @property
    def weights(self) -> Path:
        """The model's weights and the optimizer's state (Keras `save_weights`)."""
        return self.folder / STATE_DIR / WEIGHTS_FILE

    @property
    def epoch_file(self) -> Path:
        """{"epoch": how many epochs the weights have trained}, written after the weights."""
        return self.folder / STATE_DIR / EPOCH_FILE

    @property
    def early_stopping(self) -> Path:
        """{"wait", "best", "best_epoch"}: the early-stopping state."""
        return self.folder / EARLY_STOPPING_FILE

    @property
    def best_weights(self) -> Path:
        """The weights of the best epoch so far (numpy arrays arr_0, arr_1, ...)."""
        return self.folder / BEST_WEIGHTS_FILE

    def epochs_done(self) -> int:
        """How many epochs the backup holds (0: no backup, or one that cannot be read)."""
        try:
            return int(json.loads(self.epoch_file.read_text())["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0
