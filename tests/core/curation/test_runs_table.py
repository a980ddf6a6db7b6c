"""The runs table's "labels" column: which labels each run trained on (core.tables.runs.curation_label)."""

from __future__ import annotations

from core.runs.store import RunStore
from core.tables.runs import runs_frame


def test_the_runs_table_says_which_labels_each_run_trained_on(tmp_path):
    """Runs before and after curation are told apart (and runs on the same curation alike)."""
    store = RunStore(tmp_path)
    plain = store.create("head", {"data": {"source": "folder"}, "train": {}}, status="done")
    curated = store.create(
        "head", {"data": {"source": "folder", "curation": "0123456789abcdef"}, "train": {}}
    )
    labels = dict(zip(runs_frame(store.list())["run"], runs_frame(store.list())["labels"], strict=True))
    assert labels == {plain: "as given", curated: "curated 01234567"}
    store.finish(curated, "done", {"curated_relabelled": 3, "curated_excluded": 2})
    assert runs_frame(store.list())["labels"].tolist()[0] == "curated 01234567: 3 relabelled, 2 excluded"
