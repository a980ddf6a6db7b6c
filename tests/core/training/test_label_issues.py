"""The label-issue job: out-of-fold predictions of every training and validation image, ranked.

Generated striped images with labels flipped on purpose (tests.core.curation.flipped) and a real
head run on them; the job runs in the worker's queue and every answer is read back from its files.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.curation.ranking import COLUMNS, read_ranking
from core.runs.records import LABEL_ISSUES
from core.runs.requests import latest_analysis, queue_analysis
from core.runs.store import RunStore
from core.training.label_issues import fold_count
from core.training.worker import run_queue
from tests.core.curation.flipped import flipped_run, private_copy

FOLDS = 4


@pytest.fixture(scope="module")
def ranked(tmp_path_factory):
    """The flipped run's label-issue job, carried out by the worker, and the progress it reported."""
    flipped = flipped_run(tmp_path_factory.getbasetemp() / "flipped-labels")
    store = RunStore(private_copy(flipped, tmp_path_factory.mktemp("label-issues")))
    job_id = queue_analysis(store, LABEL_ISSUES, flipped.run_id, {"folds": FOLDS})
    seen: list[dict] = []
    original = store.set_progress

    def recording(run_id, **progress):
        original(run_id, **progress)
        if run_id == job_id and "stage" in progress:
            seen.append(progress)

    store.set_progress = recording
    run_queue(store, say=lambda line: None)
    return flipped, store, store.get(job_id), seen


def test_most_flipped_labels_rank_among_the_top_suspects(ranked) -> None:
    """Catches a ranking that ignores the labels, or sorts the most trusted images first."""
    flipped, store, job, _ = ranked
    assert job.status == "done", job.error
    ranking = read_ranking(store.paths(job.id).label_issues)
    in_ranking = flipped.flipped & set(ranking["file"])
    assert len(in_ranking) >= 8  # the flipped images of train and validation (the rest are in test)
    top = set(ranking["file"].head(int(1.5 * len(in_ranking))))
    found = len(in_ranking & top) / len(in_ranking)
    assert found >= 0.7, f"only {found:.0%} of the flipped images rank among the top suspects"
    # A flipped image's suggestion is its true class: the next class back from the folder it sits in.
    suspects = ranking[ranking["file"].isin(in_ranking & top)]
    assert (suspects["suggested"] != suspects["given"]).mean() >= 0.7


def test_the_ranking_covers_every_training_and_validation_image_once(ranked) -> None:
    flipped, store, job, _ = ranked
    ranking = read_ranking(store.paths(job.id).label_issues)
    run = store.get(flipped.run_id)
    assert list(ranking.columns) == list(COLUMNS)
    assert set(ranking["split"]) == {"train", "validation"}
    assert not ranking.duplicated(["split", "index"]).any()
    assert list(ranking["rank"]) == list(range(1, len(ranking) + 1))
    assert ranking["score"].is_monotonic_increasing  # most suspect (lowest quality) first
    assert job.metrics["images"] == len(ranking) and job.metrics["folds"] == FOLDS
    assert job.metrics["flagged"] == int(ranking["issue"].sum())
    assert job.parent == run.id and job.metrics["fingerprint"]


def test_out_of_fold_probabilities_are_saved_for_every_image(ranked) -> None:
    _, store, job, _ = ranked
    saved = np.load(store.paths(job.id).out_of_fold)
    ranking = read_ranking(store.paths(job.id).label_issues)
    probabilities = saved["probabilities"]
    assert probabilities.shape == (len(ranking), len(saved["classes"]))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    order = {(s, i): row for row, (s, i) in enumerate(zip(saved["split"], saved["index"], strict=True))}
    first = ranking.iloc[0]
    row = order[(first["split"], first["index"])]
    assert saved["classes"][probabilities[row].argmax()] == first["suggested"]
    assert job.metrics["out_of_fold_accuracy"] > 0.6  # the heads learned the classes, not the flips


def test_the_job_reports_each_fold(ranked) -> None:
    *_, seen = ranked
    folds = [(p["done"], p["total"]) for p in seen if p.get("stage") == "training a head per fold"]
    assert folds[0] == (0, FOLDS) and folds[-1] == (FOLDS, FOLDS)


def test_a_cancelled_job_stops_between_folds(ranked) -> None:
    flipped, store, _, _ = ranked
    job_id = queue_analysis(store, LABEL_ISSUES, flipped.run_id, {"folds": 3})
    store.request_cancel(job_id)  # before the first fold: nothing is trained or written
    run_queue(store, say=lambda line: None)
    job = store.get(job_id)
    assert job.status == "cancelled"
    assert not store.paths(job_id).label_issues.exists()
    assert latest_analysis(store, LABEL_ISSUES, flipped.run_id).id == job_id


def test_fold_count_keeps_to_what_the_classes_allow() -> None:
    assert fold_count(np.array([0, 0, 0, 1, 1, 1]), 5) == 3
    assert fold_count(np.array([0] * 10 + [1] * 10), 5) == 5
    with pytest.raises(Exception, match="at least 2 folds"):
        fold_count(np.array([0, 1, 2]), 5)
