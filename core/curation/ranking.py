"""The label-issue ranking: out-of-fold probabilities ranked by how strongly they disagree with the label.

The label_issues job (core.training.label_issues) predicts every training and validation image
with a head that never saw it (k-fold), then ranks the images here with cleanlab's confident
learning: `score` is cleanlab's label quality (normalized margin: the probability of the given
label minus the highest other one, mapped to 0..1; low = the model disagrees), `suggested` the
most probable class, and `issue` whether cleanlab's confident-learning filter flags the label
as an error. The ranking is a CSV in the job's folder (core.runs.layout.RunPaths.label_issues),
one row per image, most suspect first: split, index, file, given, suggested, score, rank, issue.

Reading and printing it needs pandas only; ranking imports cleanlab (and scikit-learn), so only
the job does that.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.workspace import atomic_write_text

COLUMNS = ("split", "index", "file", "given", "suggested", "score", "rank", "issue")
SCORING = "normalized_margin"  # cleanlab's method for labels swapped between classes


def rank_label_issues(labels: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(label quality score per image, flagged by confident learning) for out-of-fold `probabilities`."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels = np.asarray(labels, np.int64)
    probabilities = np.asarray(probabilities, np.float64)
    scores = get_label_quality_scores(labels, probabilities, method=SCORING)
    # n_jobs=1: no process pool inside the worker (the data is small: seconds either way).
    flagged = find_label_issues(labels, probabilities, n_jobs=1)
    return scores, np.asarray(flagged, bool)


def ranking_frame(
    images: pd.DataFrame,
    probabilities: np.ndarray,
    classes: list[str],
    scores: np.ndarray,
    flagged: np.ndarray,
) -> pd.DataFrame:
    """The ranking table: `images` (split, index, file, label as int) with names, scores, most suspect first.

    Ties keep the images' order (split, then index), so a ranking is reproducible.
    """
    suggested = np.asarray(probabilities).argmax(axis=1)
    names = np.asarray(classes, dtype=object)
    frame = pd.DataFrame(
        {
            "split": images["split"].to_numpy(),
            "index": images["index"].to_numpy(np.int64),
            "file": images["file"].to_numpy(),
            "given": names[images["label"].to_numpy(np.int64)],
            "suggested": names[suggested],
            "score": np.asarray(scores, np.float64),
            "issue": np.asarray(flagged, bool),
        }
    )
    frame = frame.sort_values("score", kind="stable").reset_index(drop=True)
    frame["rank"] = np.arange(1, len(frame) + 1)
    return frame[list(COLUMNS)]


def write_ranking(path: Path, frame: pd.DataFrame) -> Path:
    """The ranking as CSV at `path`, written atomically; returns it."""
    atomic_write_text(path, frame.to_csv(index=False, float_format="%.6f"))
    return path


def read_ranking(path: Path) -> pd.DataFrame | None:
    """The ranking most suspect first, or None when the file is missing or damaged."""
    try:
        frame = pd.read_csv(path, dtype={"split": str, "file": str, "given": str, "suggested": str})
    except (OSError, ValueError):
        return None
    if list(frame.columns) != list(COLUMNS):
        return None
    return frame.sort_values("rank").reset_index(drop=True)


def ranking_lines(frame: pd.DataFrame, top: int) -> list[str]:
    """The command line's list: `<file> <given label> <suggested label> <score>`, most suspect first."""
    head = frame.head(top)
    return [f"{row.file} {row.given} {row.suggested} {row.score:.4f}" for row in head.itertuples(index=False)]


def ranking_summary(metrics: dict) -> str:
    """'312 images ranked with 5 folds; confident learning flags 14 labels' from a job's metrics."""
    images, folds, flagged = metrics.get("images"), metrics.get("folds"), metrics.get("flagged")
    if images is None:
        return "no images ranked"
    return f"{images} images ranked with {folds} folds; confident learning flags {flagged} labels"
