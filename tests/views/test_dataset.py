"""The Dataset page (views/dataset.py) under AppTest: counts, samples, full-size image, errors, Reload,
and the reference dataset's download as a job of the worker that the page follows."""

from __future__ import annotations

import re
from unittest import mock

from core.config import DataConfig
from core.data import open_source
from core.runs.requests import queue_prepare
from core.runs.store import RunStore
from tests.apptest import chart, start_app, texts
from tests.conftest import PET_BREEDS, save_image, write_oxford_annotations, write_oxford_images
from tests.core.data.tfds_layout import prepare_with_extracted_files


def test_dataset_page_shows_counts_samples_and_one_image_at_full_size(workspace, pets):
    at = start_app(data_source="folder", data_path=str(pets))
    at.run()
    assert not at.exception
    assert texts(at.metric) == ["6", "30", "6", "12"]
    figure = chart(at, "label_counts_chart")
    by_species = {t["name"]: t["x"] for t in figure["data"]}
    assert set(by_species) == {"cat", "dog"}  # cats and dogs told apart by colour
    assert sorted(by_species["cat"]) == ["Abyssinian", "Bengal", "Persian"]
    assert len(at.image) == 12 + 1  # the grid, and one at full size
    assert re.search(r"shape \*\*24 × 3\d × 3\*\*", at.markdown[-1].value)

    at.segmented_control(key="counts_sort").set_value("name").run()
    order = chart(at, "label_counts_chart")["layout"]["xaxis"]["categoryarray"]
    assert order == sorted(PET_BREEDS, key=str.lower)

    at.selectbox(key="sample_species").set_value("dog").run()
    captions = [image.proto.imgs[0].caption for image in at.image[:-1]]
    assert captions and all(c.split(" · ")[0] in ("beagle", "boxer", "pug") for c in captions)
    at.selectbox(key="sample_breed").set_value("pug").run()
    assert {image.proto.imgs[0].caption.split(" · ")[0] for image in at.image[:-1]} == {"pug"}

    at.selectbox(key="sample_breed").set_value("all").run()
    at.selectbox(key="sample_species").set_value("all").run()
    before = [image.proto.imgs[0].caption for image in at.image[:-1]]
    at.button(key="reshuffle_samples").click().run()
    assert [image.proto.imgs[0].caption for image in at.image[:-1]] != before


def bar_texts(block) -> list[str]:
    """The texts of the progress bars in a part of the page."""
    return [element.proto.text for element in block.get("progress")]


def has_button(at, key: str) -> bool:
    return any(button.key == key for button in at.button)


def test_the_download_runs_in_the_worker_and_the_page_follows_it(workspace, spawned):
    at = start_app()
    offer = texts(at.info)[0]
    assert "not prepared" in offer and "sidebar" in offer and "--" not in offer  # the dashboard's words
    at.button(key="prepare_dataset").click().run()
    assert not at.exception
    store = RunStore(workspace)
    [job] = store.list()
    assert (job.kind, job.status, job.data.source) == ("prepare", "queued", "tfds")
    assert spawned == [workspace]  # the worker was started; the page itself downloads nothing
    assert not has_button(at, "prepare_dataset")
    assert bar_texts(at.main) == ["Waiting for the worker to start preparing the dataset…"]

    second_tab = start_app()  # another tab shows the same job at once, and offers no second download
    assert not has_button(second_tab, "prepare_dataset") and has_button(second_tab, "cancel_prepare")

    store.start(job.id)  # the worker claims the job and reports its progress
    store.set_progress(job.id, stage="downloading the Oxford-IIIT Pet archives (MB)", done=300, total=773)
    at.run()
    progress = "Downloading the Oxford-IIIT Pet archives (MB): 300 of 773"
    assert bar_texts(at.main) == [progress]
    assert bar_texts(at.sidebar) == [f"Preparing the dataset · {progress}"]

    at.button(key="cancel_prepare").click().run()
    assert store.get(job.id).cancel_requested
    assert bar_texts(at.main) == ["Stopping: downloading the Oxford-IIIT Pet archives (MB): 300 of 773"]
    assert len(store.list()) == 1  # nothing else was queued
    store.finish(job.id, "cancelled")
    at.run()
    assert has_button(at, "prepare_dataset") and any(
        t.startswith("The last download (run ") and t.endswith(") was cancelled.") for t in texts(at.caption)
    )
    assert not at.get("progress")


def test_a_failed_download_is_explained_and_can_be_tried_again(workspace, spawned):
    store = RunStore(workspace)
    failed = queue_prepare(store, DataConfig())
    store.start(failed)
    store.finish(failed, "failed", error="It cannot be downloaded (no network); choose another source.")
    at = start_app()
    assert texts(at.error) == [
        f"The last download (run {failed}) did not finish: "
        "It cannot be downloaded (no network); choose another source."
    ]
    at.button(key="prepare_dataset").click().run()
    assert [r.status for r in store.list()] == ["queued", "failed"]


def test_once_the_job_is_done_the_page_shows_the_data(workspace, spawned, tmp_path):
    at = start_app()
    at.button(key="prepare_dataset").click().run()
    store = RunStore(workspace)
    [job] = store.list()
    store.start(job.id)
    prepare_generated_tfds(tmp_path)  # what the worker's job does, into the page's tfds folder
    store.finish(job.id, "done")
    at.run()
    assert not at.exception and not at.get("progress")
    assert texts(at.metric) == ["37", "19", "2", "9"]  # every Oxford breed; the generated images' splits


def prepare_generated_tfds(tmp_path) -> None:
    """Prepare tfds's oxford_iiit_pet in $TFDS_DATA_DIR from generated Oxford files (no network)."""
    import tensorflow_datasets as tfds

    originals = tmp_path / "oxford"
    write_oxford_images(originals / "images")
    write_oxford_annotations(originals)
    fetch = mock.patch.object(
        tfds.download.DownloadManager, "download_and_extract", lambda self, urls: {k: originals for k in urls}
    )
    with fetch, mock.patch("core.data.tfds_source.check_reachable", return_value=True):
        open_source("tfds", workspace=tmp_path / "elsewhere", download=True)


def test_a_downloaded_dataset_is_shown_from_the_files_tfds_extracted(workspace, tmp_path):
    """The default first page once the data is downloaded: drawn from the originals, never with tf.data."""
    prepare_with_extracted_files(tmp_path / "tfds", tmp_path / "elsewhere")  # the page's $TFDS_DATA_DIR
    with mock.patch("core.data.tfds_source.open_tfds", side_effect=AssertionError("read with tf.data")):
        at = start_app()
    assert not at.exception
    assert texts(at.metric) == ["37", "19", "2", "9"]  # the same counts as the prepared dataset's
    assert len(at.image) == 12 + 1


def test_dataset_page_bad_folder_gives_one_sentence_and_reload_reads_it_again(workspace, tmp_path):
    (tmp_path / "one" / "only").mkdir(parents=True)
    save_image(tmp_path / "one" / "only" / "a.jpg", (1, 2, 3))
    at = start_app(data_source="folder", data_path=str(tmp_path / "one"))
    at.run()
    assert not at.exception
    assert "at least two classes" in texts(at.error)[0]

    # Fixing the folder is picked up at once (failures are not cached); later changes on Reload.
    for number in range(6):
        save_image(tmp_path / "one" / "other" / f"b{number}.jpg", (200, 2, 3))
    at.run()
    assert not at.error and texts(at.metric)[0] == "2"
    for number in range(6):
        save_image(tmp_path / "one" / "third" / f"c{number}.jpg", (2, 200, 3))
    at.run()
    assert texts(at.metric)[0] == "2"  # the opened source is kept between reruns
    at.button(key="reload_dataset").click().run()
    assert not at.exception and texts(at.metric)[0] == "3"
