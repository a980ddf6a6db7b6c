"""The sidebar's note of a dataset being prepared (ui.data_job), on a page other than the Dataset page.

Catches: a download in the worker that only the Dataset page shows; a note left after the job
ended; a training run, or a queued job, taken for a running download; the Training page
following a data job as if it were a training run.
"""

from __future__ import annotations

from core import config as cfg
from core.runs.requests import queue_head_run, queue_prepare
from core.runs.store import RunStore
from tests.apptest import open_page, start_app, texts


def sidebar_bars(at) -> list[str]:
    return [element.proto.text for element in at.sidebar.get("progress")]


def test_the_sidebar_shows_a_running_download_on_every_page(workspace, spawned):
    store = RunStore(workspace)
    at = open_page(start_app(), "training")
    assert sidebar_bars(at) == []
    job = queue_prepare(store, cfg.DataConfig())
    at.run()
    assert sidebar_bars(at) == []  # queued: the Dataset page says it waits; nothing is being prepared yet

    store.start(job)
    store.set_progress(job, stage="extracting the archives (files)", done=10, total=40)
    at.run()
    assert sidebar_bars(at) == ["Preparing the dataset · Extracting the archives (files): 10 of 40"]
    assert "No runs yet" in texts(at.info)[0]  # the data job is not a training run to follow

    store.finish(job, "done")
    at.run()
    assert sidebar_bars(at) == []


def test_a_training_run_is_no_download(workspace, spawned):
    store = RunStore(workspace)
    store.start(queue_head_run(store, cfg.DataConfig(), cfg.TrainConfig()))
    at = open_page(start_app(), "training")
    assert sidebar_bars(at) == []
