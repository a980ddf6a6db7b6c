"""The Embedding map page (views/embedding.py, ui.embedding) under AppTest.

No network, no TensorFlow in the page: one real finished run (tests/conftest.py `trained`) on a
private copy of its workspace; finished maps are written as a job would write them
(core.embeddings.maps.write_map) from the run's own images, so no t-SNE runs here (the job is
tested in tests/core/training/test_embedding_job.py). Catches: a page that says nothing useful
without runs or maps, a button that queues nothing or no worker, a job that is not followed, a
finished map that is not drawn (or not as WebGL points), a highlight that changes nothing, a map
without its hover photos (the route itself: tests/ui/test_map_photos.py, the tooltip in a browser:
tests/browser/test_map_hover.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.config import DataConfig
from core.data.sources import open_source
from core.embeddings.maps import map_options, write_map
from core.runs.records import EMBEDDING
from core.runs.store import RunStore
from tests.apptest import open_page, start_app, texts

TOOLTIP = "petlab_map_photo"  # ui.map_photos's component


@pytest.fixture
def page():
    """Opens the page in the dashboard (a fresh session each call)."""

    def run() -> AppTest:
        return open_page(start_app(), "embedding")

    return run


def map_job(store: RunStore, split: str = "train", status: str = "done") -> int:
    """A finished embedding job of run 1 with a map of its `split`, as the worker writes it."""
    run = store.get(1)
    job = store.create(EMBEDDING, {"data": run.config["data"], EMBEDDING: map_options(split)}, parent=1)
    source = open_source(
        "folder", run.data.path, workspace=store.workspace, data_config=DataConfig(**run.config["data"])
    )
    labels = source.labels(split)
    coords = np.random.default_rng(0).normal(size=(len(labels), 2))
    names = [source.item_name(split, i) for i in range(len(labels))]
    store.paths(job).create()
    write_map(store.paths(job).embedding, coords, labels, names, source.class_names, split)
    store.start(job)
    store.finish(job, status, {"split": split, "points": len(labels), "method": "t-SNE", "cached": False})
    return job


def figure(at: AppTest, job: int) -> dict:
    charts = [c for c in at.get("plotly_chart") if c.proto.id.endswith(f"-embedding_chart_{job}")]
    assert len(charts) == 1
    return json.loads(charts[0].proto.spec)


def hover_photos(at: AppTest) -> list[dict]:
    """The data of each hover-photo tooltip (ui.map_photos) the page mounted."""
    return [json.loads(c.proto.json) for c in at.get("bidi_component") if c.proto.component_name == TOOLTIP]


def test_without_a_finished_run_the_page_says_what_to_do(page, workspace):
    at = page()
    assert any("no finished run to map" in text for text in texts(at.info))
    assert not at.get("plotly_chart") and not at.button


def test_a_run_without_a_map_offers_to_compute_it(page, trained_copy, spawned):
    at = page()
    assert any("no map of its train images" in text for text in texts(at.info))
    assert any("extracted first" in text for text in texts(at.info))
    at.button(key="compute_map").click().run()
    assert not at.exception, at.exception
    store = RunStore(trained_copy)
    (job,) = [r for r in store.list() if r.kind == EMBEDDING]
    assert (job.parent, job.status, job.config[EMBEDDING]) == (1, "queued", {"split": "train"})
    assert spawned == [trained_copy]  # a worker was started for it
    assert [bar.proto.text for bar in at.get("progress")] == ["Waiting for the worker to start the map…"]
    assert at.button(key="cancel_map")


def test_the_chosen_split_is_the_one_offered_and_queued(page, trained_copy, spawned):
    at = page()
    at.segmented_control(key="map_split").set_value("test").run()
    assert any("no map of its test images" in text for text in texts(at.info))
    at.button(key="compute_map").click().run()
    (job,) = [r for r in RunStore(trained_copy).list() if r.kind == EMBEDDING]
    assert job.config[EMBEDDING] == {"split": "test"}


def test_a_running_map_shows_its_progress(page, trained_copy):
    store = RunStore(trained_copy)
    job = store.create(EMBEDDING, {EMBEDDING: map_options("train")}, parent=1)
    store.start(job)
    store.set_progress(job, stage="arranging the map (t-SNE iterations)", done=300, total=750)
    at = page()
    assert [bar.proto.text for bar in at.get("progress")] == [
        "Arranging the map (t-SNE iterations): 300 of 750"
    ]
    at.button(key="cancel_map").click().run()
    assert store.get(job).cancel_requested


def test_a_failed_map_says_why_and_offers_it_again(page, trained_copy):
    store = RunStore(trained_copy)
    job = store.create(EMBEDDING, {EMBEDDING: map_options("train")}, parent=1)
    store.start(job)
    store.finish(job, "failed", error="The disk is full; free space.")
    at = page()
    assert "The disk is full" in at.error[0].value and at.button(key="compute_map")


def test_a_finished_map_is_drawn_as_webgl_points(page, trained_copy):
    store = RunStore(trained_copy)
    job = map_job(store)
    other_split = map_job(store, "test")
    at = page()
    assert not at.error, texts(at.error)
    traces = figure(at, job)["data"]
    size = store.get(job).metrics["points"]
    assert {t["type"] for t in traces} == {"scattergl"}
    assert len(traces) == 6  # one per breed of the run
    # Hover shows the photo: a tooltip on this chart, asking the server's route for this map's points.
    version = store.paths(job).embedding.stat().st_mtime_ns
    assert hover_photos(at) == [
        {"chart": f"embedding_chart_{job}", "base": f"/petlab/map-photo/{job}/", "query": f"?v={version}"}
    ]
    assert any("Hover a point to see its photo" in text for text in texts(at.caption))
    assert at.radio(key="map_color_by").value == "breed"

    at.radio(key="map_color_by").set_value("species").run()
    assert sorted(t["name"] for t in figure(at, job)["data"]) == ["cat", "dog"]

    at.selectbox(key="map_highlight").set_value("beagle").run()
    grey, beagle = figure(at, job)["data"]
    assert (grey["name"], beagle["name"]) == ("other classes", "beagle")
    assert any(f"{size} train images of run 1" in text for text in texts(at.caption))

    at.segmented_control(key="map_split").set_value("test").run()
    assert figure(at, other_split)["data"] and not [
        c for c in at.get("plotly_chart") if c.proto.id.endswith(f"-embedding_chart_{job}")
    ]
    assert [photos["base"] for photos in hover_photos(at)] == [f"/petlab/map-photo/{other_split}/"]


def test_a_map_whose_file_is_gone_is_offered_again(page, trained_copy):
    store = RunStore(trained_copy)
    job = map_job(store)
    store.paths(job).embedding.write_bytes(b"damaged")
    at = page()
    assert "missing or damaged" in at.error[0].value
    assert not at.get("plotly_chart") and at.button(key="compute_map")
