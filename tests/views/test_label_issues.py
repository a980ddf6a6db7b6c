"""The Label issues page (views/label_issues.py, ui.curation) under AppTest.

No TensorFlow in the page: one real finished run (tests/conftest.py `trained`) on a private copy of
its workspace; a finished ranking is written as the job writes it (core.curation.ranking) from the
run's own images, so no heads train here (the job is tested in tests/core/training/test_label_issues.py).
Catches: a button that queues nothing or starts no worker, a job that is not followed, a ranking not
drawn most suspect first, a mark that is not saved at once (or saved wrong), marks that cannot be cleared.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.config import DataConfig
from core.curation.marks import Curation, Mark, marks_path, read_marks, save_mark
from core.curation.ranking import ranking_frame, write_ranking
from core.data.sources import open_source
from core.runs.records import LABEL_ISSUES
from core.runs.store import RunStore
from tests.apptest import TIMEOUT, open_page, start_app, texts


@pytest.fixture
def page():
    """Opens the page in the dashboard (a fresh session each call)."""

    def run() -> AppTest:
        return open_page(start_app(), "label_issues")

    return run


def ranking_job(store: RunStore) -> tuple[int, pd.DataFrame]:
    """A finished label-issue job of run 1 ranking its train and validation images, as the job writes it."""
    run = store.get(1)
    data = DataConfig(**run.config["data"])
    source = open_source("folder", data.path, workspace=store.workspace, data_config=data)
    images = pd.concat(
        pd.DataFrame(
            {
                "split": split,
                "index": np.arange(source.split_size(split)),
                "file": [source.item_name(split, i) for i in range(source.split_size(split))],
                "label": source.labels(split),
            }
        )
        for split in ("train", "validation")
    ).reset_index(drop=True)
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(len(source.class_names)), len(images))
    scores = rng.uniform(0, 1, len(images))
    frame = ranking_frame(images, probabilities, source.class_names, scores, scores < 0.1)
    job = store.create(LABEL_ISSUES, {"data": run.config["data"], LABEL_ISSUES: {"folds": 5}}, parent=1)
    store.paths(job).create()
    write_ranking(store.paths(job).label_issues, frame)
    store.start(job)
    metrics = {"images": len(frame), "folds": 5, "flagged": int(frame["issue"].sum())}
    store.finish(job, "done", metrics | {"out_of_fold_accuracy": 0.5, "fingerprint": source.fingerprint()})
    return job, frame


def control(at: AppTest, kind: str, job: int, row) -> object:
    key = f"curation_{kind}:{job}:{row['split']}:{row['index']}"
    return at.segmented_control(key=key) if kind == "mark" else at.selectbox(key=key)


def test_without_a_finished_run_the_page_says_what_to_do(page, workspace) -> None:
    at = page()
    assert any("no finished run to study" in text for text in texts(at.info))


def test_a_run_without_a_ranking_offers_to_find_label_issues(page, trained_copy, spawned) -> None:
    at = page()
    assert any("no label-issue ranking yet" in text for text in texts(at.info))
    at.segmented_control(key="label_issue_folds").set_value(3)
    at.button(key="find_label_issues").click().run()
    assert not at.exception, at.exception
    (job,) = [r for r in RunStore(trained_copy).list() if r.kind == LABEL_ISSUES]
    assert (job.parent, job.status, job.config[LABEL_ISSUES]) == (1, "queued", {"folds": 3})
    assert spawned == [trained_copy]
    assert any("Waiting for the worker" in bar.proto.text for bar in at.get("progress"))
    at.button(key="cancel_label_issues").click().run()
    assert RunStore(trained_copy).get(job.id).cancel_requested


def test_a_failed_job_says_why_and_offers_again(page, trained_copy) -> None:
    store = RunStore(trained_copy)
    job = store.create(LABEL_ISSUES, {"data": store.get(1).config["data"], LABEL_ISSUES: {}}, parent=1)
    store.start(job)
    store.finish(job, "failed", error="Finding label issues needs at least 2 folds.")
    at = page()
    assert any("needs at least 2 folds" in text for text in texts(at.error))
    assert at.button(key="find_label_issues")


def test_the_suspects_are_shown_most_suspect_first_with_their_labels(page, trained_copy) -> None:
    _, frame = ranking_job(RunStore(trained_copy))
    at = page()
    shown = frame.head(24)
    assert len(at.image) == len(shown)
    captions = [m.value for m in at.markdown if m.value.startswith("given **")]
    expected = [
        f"given **{r.given}** → suggested **{r.suggested}** · score {r.score:.3f}" for r in shown.itertuples()
    ]
    assert [c.split("  \n")[0] for c in captions] == expected
    assert [m.value for m in at.metric][:2] == [str(len(frame)), str(int(frame["issue"].sum()))]
    at.segmented_control(key="suspects_shown").set_value(12).run()
    assert len(at.image) == 12


def test_marking_saves_at_once_and_clearing_forgets(page, trained_copy) -> None:
    """Catches a mark saved late, to the wrong image or class, or a relabel that ignores its class."""
    store = RunStore(trained_copy)
    job, frame = ranking_job(store)
    data = store.get(job).data
    first, second = frame.iloc[0], frame.iloc[1]
    at = page()
    control(at, "mark", job, first).set_value("exclude").run()
    control(at, "mark", job, second).set_value("relabel").run()
    marks = read_marks(trained_copy, data)
    assert {(m.file, m.given, m.action, m.label) for m in marks.marks} == {
        (first.file, first.given, "exclude", None),
        (second.file, second.given, "relabel", relabel_default(second, marks.classes)),
    }
    other = next(c for c in marks.classes if c not in (second.given, relabel_default(second, marks.classes)))
    control(at, "to", job, second).set_value(other).run()
    assert read_marks(trained_copy, data).mark_of(second.split, int(second["index"])).label == other
    assert any("1 relabelled, 1 excluded" in m.value for m in at.markdown)
    control(at, "mark", job, first).set_value(None).run()  # deselected: the mark is forgotten
    assert read_marks(trained_copy, data).mark_of(first.split, int(first["index"])) is None
    at.button(key="clear_marks").click().run()
    assert read_marks(trained_copy, data) is None
    assert control(at, "mark", job, second).value is None


def relabel_default(row, classes: list[str]) -> str:
    """The class a relabel starts at: the suggested one, unless that is the given label."""
    return row.suggested if row.suggested != row.given else next(c for c in classes if c != row.given)


def dataset_and_training_notes(path: str) -> None:
    """What the Dataset page (curated counts) and the Training page (its note) draw for a folder."""
    from core.config import DataConfig
    from core.data.sources import open_for_browsing
    from ui import curation, state

    data = DataConfig(source="folder", path=path)
    source = open_for_browsing("folder", path, workspace=state.workspace(), data_config=data)
    curation.draw_curated_counts(source, data)
    curation.curation_note(data)


def test_the_dataset_and_training_pages_say_what_the_next_run_trains_on(trained_copy) -> None:
    """Catches counts that ignore the marks, or a note shown for marks that change nothing."""
    store = RunStore(trained_copy)
    job, frame = ranking_job(store)
    data = store.get(job).data
    notes = AppTest.from_function(dataset_and_training_notes, args=(data.path,), default_timeout=TIMEOUT)
    base = Curation(store.get(job).metrics["fingerprint"], classes_of(store))
    first, second = frame.iloc[0], frame.iloc[1]
    save_mark(
        trained_copy, data, base, Mark(first.split, int(first["index"]), first.file, first.given, "keep")
    )
    at = notes.run()
    assert not at.info and not at.caption  # a keep changes nothing
    save_mark(
        trained_copy, data, base, Mark(first.split, int(first["index"]), first.file, first.given, "exclude")
    )
    to = next(c for c in base.classes if c != second.given)
    mark = Mark(second.split, int(second["index"]), second.file, second.given, "relabel", to)
    save_mark(trained_copy, data, base, mark)
    at = notes.run()
    assert not at.exception, at.exception
    assert any("1 relabelled, 1 excluded" in text for text in texts(at.info))
    assert any(
        text.startswith("Trains on curated data: 1 relabelled, 1 excluded") for text in texts(at.caption)
    )
    table = at.dataframe[0].value.set_index("class")["change"].to_dict()
    expected: dict[str, int] = {}
    for name, change in ((first.given, -1), (second.given, -1), (to, +1)):
        expected[name] = expected.get(name, 0) + change
    assert table == {name: change for name, change in expected.items() if change}


def classes_of(store: RunStore) -> list[str]:
    from core.workspace import read_json

    return list(read_json(store.paths(1).class_names))


def test_damaged_marks_are_reported_and_can_be_cleared(page, trained_copy) -> None:
    store = RunStore(trained_copy)
    job, _ = ranking_job(store)
    path = marks_path(trained_copy, store.get(job).data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{damaged")
    at = page()
    assert any("cannot be read" in text for text in texts(at.error))
    at.button(key="clear_damaged_marks").click().run()
    assert not path.exists() and not at.error
