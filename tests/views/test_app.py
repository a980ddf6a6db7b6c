"""The dashboard under streamlit.testing.v1.AppTest: every page, the shared sidebar, and its helpers.

No network and no GPU: data is a generated folder of class folders, models are
tiny MobileNetV3Small with random weights at 32 px. One module-scoped workspace
holds a real finished run; tests that add runs work on a copy of it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time

import numpy as np
import pytest

from core import config as core_config
from core.catalog.choices import unfreeze_choice
from core.config import TrainConfig
from core.runs import worker_process as jobs
from core.runs.store import RunStore
from core.tables.dataset import label_counts, sample_indices
from core.tables.runs import current_run, estimate_eta, format_duration, runs_frame
from tests.apptest import (  # noqa: F401
    TIMEOUT,
    TINY,
    chart,
    jpeg_bytes,
    open_page,
    png_bytes,
    sidebar_widget,
    start_app,
    texts,
)
from tests.conftest import PET_BREEDS, save_image

# -- every page renders ------------------------------------------------------------------


def test_every_page_renders_on_an_empty_workspace(workspace):
    at = start_app()
    # The reference source is not prepared here: a clear message and a button, never a spinner.
    assert "not prepared" in texts(at.info)[0]
    assert at.button(key="prepare_dataset").label == "Download and prepare the dataset"
    open_page(at, "augmentation")
    assert at.session_state["augment_spec"] == TrainConfig().augment
    open_page(at, "training")
    assert any("No runs yet" in text for text in texts(at.info))
    assert at.button(key="start_finetune").disabled
    open_page(at, "predict")
    assert any("no finished run" in text for text in texts(at.info))
    open_page(at, "dataset")
    assert [c.value for c in at.sidebar.caption if "trains on" in c.value]


def test_every_page_renders_with_runs(trained, pets, workspace, monkeypatch):
    monkeypatch.setenv("PETLAB_WORKSPACE", str(trained))
    at = start_app(data_source="folder", data_path=str(pets))
    at.run()
    assert not at.exception
    assert texts(at.metric) == ["6", str(30), str(6), str(12)]
    for page in ("augmentation", "predict"):
        open_page(at, page)
        assert not at.error, texts(at.error)
    open_page(at, "training")
    assert "Run 1 is done" in texts(at.success)[0]
    table = at.dataframe[0].value
    assert table["run"].tolist() == [1] and table["status"].tolist() == ["done"]
    assert table["backbone"].tolist() == ["mobilenetv3small"]
    assert {"best val accuracy %", "test accuracy %", "duration"} <= set(table.columns)
    assert {t["name"] for t in chart(at, "live_accuracy_chart")["data"]} == {"train", "validation"}
    assert at.multiselect(key="compare_runs").value == [1]
    assert {t["name"] for t in chart(at, "compare_loss_chart")["data"]} == {
        "run 1, train",
        "run 1, validation",
    }
    assert at.selectbox(key="finetune_parent").value == 1


# -- sidebar ---------------------------------------------------------------------------------


def test_sidebar_defaults_come_from_core_config(workspace):
    at = start_app()
    train, config = TrainConfig(), core_config
    assert at.selectbox(key="data_source").value == config.DATA.source
    assert at.selectbox(key="backbone").value == train.backbone
    assert at.selectbox(key="weights").value == train.weights
    assert at.number_input(key="epochs").value == train.epochs
    assert at.select_slider(key="lr").value == train.lr
    assert at.number_input(key="batch_size").value == train.batch_size
    assert at.number_input(key="patience").value == train.patience
    assert at.number_input(key="ft_epochs").value == config.FINETUNE.epochs
    assert at.select_slider(key="ft_lr").value == config.FINETUNE.lr
    assert at.radio(key="ft_unfreeze").value == config.FINETUNE.unfreeze


def test_sidebar_settings_survive_page_switches_and_are_what_gets_queued(workspace, pets, spawned):
    at = start_app(
        data_source="folder", data_path=str(pets), epochs=3, lr=1e-4, batch_size=8, patience=2, **TINY
    )
    open_page(at, "augmentation")
    open_page(at, "training")
    assert at.number_input(key="epochs").value == 3  # still there after two page switches
    at.button(key="start_head").click().run()
    assert not at.exception and not at.error, texts(at.error)

    store = RunStore(workspace)
    (record,) = store.list()
    assert record.status == "queued" and record.kind == "head"
    train = record.config["train"]
    assert (train["epochs"], train["lr"], train["batch_size"], train["patience"]) == (3, 1e-4, 8, 2)
    assert (train["backbone"], train["weights"], train["image_size"]) == ("mobilenetv3small", "none", 32)
    assert record.config["data"] == {**record.config["data"], "source": "folder", "path": str(pets.resolve())}
    assert spawned == [workspace.resolve()]
    assert "Run 1 is queued" in texts(at.info)[0]

    # A second start while the first waits is queued behind it, and shown so.
    at.number_input(key="epochs").set_value(4)
    at.button(key="start_head").click().run()
    assert [r.status for r in store.list()] == ["queued", "queued"]
    assert store.get(2).config["train"]["epochs"] == 4
    assert "Also queued: run 2" in texts(at.caption)
    assert len(spawned) == 2


def test_a_wrong_folder_is_refused_before_anything_is_queued(workspace, tmp_path, spawned):
    at = start_app(data_source="folder", data_path=str(tmp_path / "missing"), **TINY)
    open_page(at, "training")
    at.button(key="start_head").click().run()
    assert "does not exist" in texts(at.error)[0]
    assert RunStore(workspace).list() == [] and spawned == []


def test_finetuning_a_finished_run_is_queued_with_the_sidebar_settings(trained_copy, spawned):
    at = start_app(ft_epochs=2, ft_lr=1e-4, ft_unfreeze="top").run()
    sidebar_widget(at, "ft_layers").set_value(7)  # enabled once "Top N" is chosen
    open_page(at, "training")
    at.button(key="start_finetune").click().run()
    assert not at.error, texts(at.error)
    record = RunStore(trained_copy).get(2)
    assert (record.kind, record.parent, record.status) == ("finetune", 1, "queued")
    assert (record.config["finetune"]["epochs"], record.config["finetune"]["lr"]) == (2, 1e-4)
    assert record.config["finetune"]["unfreeze"] == "7"
    assert spawned == [trained_copy.resolve()]


# -- dataset ---------------------------------------------------------------------------------


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


def test_dataset_page_offline_gives_the_clear_message(workspace, monkeypatch):
    import core.data.tfds_source

    monkeypatch.setattr(core.data.tfds_source, "check_reachable", lambda url, timeout=5.0: False)
    at = start_app()
    at.button(key="prepare_dataset").click().run()
    assert not at.exception
    message = texts(at.error)[0]
    assert "no network" in message and "folder" in message
    assert not at.get("progress")  # no bar left hanging


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


# -- augmentation ----------------------------------------------------------------------------


def test_augmentation_choices_change_the_spec_that_training_uses(workspace, pets, spawned):
    at = start_app(data_source="folder", data_path=str(pets), **TINY)
    open_page(at, "augmentation")
    assert len(at.image) == 1 + 8  # the original and eight augmented versions
    at.checkbox(key="aug_rotation").check().run()
    assert at.session_state["augment_spec"] == "flip,rotation"
    at.slider(key="aug_rotation_value").set_value(0.25).run()
    at.checkbox(key="aug_flip").uncheck().run()
    at.checkbox(key="aug_zoom").check().run()
    assert at.session_state["augment_spec"] == "rotation=0.25,zoom"
    assert "rotation=0.25,zoom" in " ".join(c.value for c in at.sidebar.caption)
    assert len(at.image) == 9 and not at.exception

    open_page(at, "training")
    at.button(key="start_head").click().run()
    assert RunStore(workspace).get(1).config["train"]["augment"] == "rotation=0.25,zoom"

    open_page(at, "augmentation")  # the choices are still there
    assert at.checkbox(key="aug_rotation").value and not at.checkbox(key="aug_flip").value
    at.button(key="aug_reset").click().run()
    assert at.session_state["augment_spec"] == TrainConfig().augment


def test_augmentation_preview_on_an_uploaded_photo(workspace):
    at = start_app()
    open_page(at, "augmentation")
    at.radio(key="aug_image_mode").set_value("upload").run()
    at.file_uploader(key="aug_upload").set_value(("mine.png", png_bytes(), "image/png")).run()
    assert not at.exception and len(at.image) == 9
    first = [image.proto.imgs[0].url for image in at.image]
    at.button(key="aug_reshuffle").click().run()
    assert len(at.image) == 9 and first != [image.proto.imgs[0].url for image in at.image]


# -- training --------------------------------------------------------------------------------


def test_training_page_follows_a_running_run_and_cancels_it(workspace):
    store = RunStore(workspace)
    config = {"data": {"source": "folder"}, "train": {"backbone": "mobilenetv3small", "epochs": 3}}
    run_id = store.create("head", config, status="running")  # owned by this (live) process
    store.log_epoch(run_id, 1, {"accuracy": 0.5, "val_accuracy": 0.4, "loss": 1.2, "val_loss": 1.3}, 10.0)
    store.set_progress(run_id, epoch=2, epochs=3, step=4, steps=10)
    at = start_app()
    open_page(at, "training")
    (bar,) = at.get("progress")
    assert bar.value == 40
    assert "Epoch 2 of 3 · batch 4 of 10 · about 16 s left" in bar.text
    assert any("status **running**" in m.value for m in at.markdown)
    assert {t["name"] for t in chart(at, "live_loss_chart")["data"]} == {"train", "validation"}

    at.button(key="cancel_run").click().run()
    assert store.get(run_id).cancel_requested
    assert any("Stopping at the next batch" in text for text in texts(at.warning))


def test_training_page_shows_why_a_run_failed(workspace):
    store = RunStore(workspace)
    run_id = store.create("head", {"train": {"backbone": "resnet50v2"}}, status="running")
    store.finish(run_id, "failed", error="The ImageNet weights cannot be downloaded (no network).")
    at = start_app()
    open_page(at, "training")
    assert texts(at.error) == [
        f"Run {run_id} failed: The ImageNet weights cannot be downloaded (no network)."
    ]
    assert all(button.key != "cancel_run" for button in at.button)


def test_training_page_offers_to_restart_a_stalled_queue(workspace, spawned):
    store = RunStore(workspace)
    run_id = store.create("head", {"train": {"backbone": "mobilenetv3small"}})
    with store._write() as conn:  # queued long ago, and no worker alive
        conn.execute("UPDATE runs SET created = created - 60 WHERE id = ?", (run_id,))
    at = start_app()
    open_page(at, "training")
    assert any("No training process" in text for text in texts(at.warning))
    at.button(key="resume_queue").click().run()
    assert spawned == [workspace.resolve()]


def test_a_real_worker_trains_runs_started_from_the_page_and_stays_warm(workspace, pets, monkeypatch):
    monkeypatch.setattr(jobs, "WORKER_LINGER_S", 20.0)
    at = start_app(data_source="folder", data_path=str(pets), epochs=1, batch_size=16, **TINY)
    open_page(at, "training")
    at.button(key="start_head").click().run()
    assert not at.error, texts(at.error)
    store = RunStore(workspace)
    worker = jobs.running_worker(workspace)
    try:
        deadline = time.monotonic() + 300
        while store.get(1).status in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(1)
        record = store.get(1)
        assert record.status == "done", f"{record.error}\n{jobs.log_tail(workspace)}"
        assert record.pid == worker != os.getpid()  # it trained in another process
        at.run()
        assert "Run 1 is done" in texts(at.success)[0]
        assert "run 1 done" in jobs.log_tail(workspace)
        # The next run goes to the same, still warm worker instead of a new process.
        at.button(key="start_head").click().run()
        assert jobs.running_worker(workspace) == worker
        deadline = time.monotonic() + 120
        while store.get(2).status in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert store.get(2).status == "done" and store.get(2).pid == worker
        deadline = time.monotonic() + 60
        while jobs.worker_alive(workspace) and time.monotonic() < deadline:  # it exits after lingering
            time.sleep(0.5)
        assert not jobs.worker_alive(workspace)
    finally:
        if worker and jobs.worker_alive(workspace):
            os.kill(worker, signal.SIGKILL)


# -- predict ---------------------------------------------------------------------------------


def test_predict_gives_top5_for_uploads_and_a_message_for_a_bad_file(trained_copy, monkeypatch):
    import core.inference.predict

    loads = []
    real_load = core.inference.predict.load_model
    monkeypatch.setattr(
        core.inference.predict, "load_model", lambda path: loads.append(path) or real_load(path)
    )
    at = start_app()
    open_page(at, "predict")
    assert at.selectbox(key="predict_run").value == 1
    at.file_uploader(key="predict_upload").set_value(
        [("cat.png", png_bytes(), "image/png"), ("broken.jpg", b"not an image at all", "image/jpeg")]
    ).run()
    assert not at.exception
    names = chart(at, "prediction_chart_0")["data"][0]["y"]
    assert len(names) == 5 and set(names) <= set(PET_BREEDS)
    assert "broken.jpg" in texts(at.error)[0] and len(at.error) == 1
    assert any(m.value.startswith("Most likely") for m in at.markdown)

    at.toggle(key="use_camera").set_value(True).run()
    at.camera_input(key="camera_photo").upload("photo.jpg", jpeg_bytes()).run()
    assert not at.exception
    chart(at, "prediction_chart_2")  # the camera photo, after the two uploads
    assert len(loads) == 1  # the model was loaded once and kept


def test_predict_defaults_to_the_best_run(trained_copy):
    store = RunStore(trained_copy)
    shutil.copytree(trained_copy / "runs" / "1", trained_copy / "runs" / "2")
    run_id = store.create("head", store.get(1).config, status="done")
    store.update_metrics(run_id, {"best_val_accuracy": 0.99})
    assert run_id == 2
    at = start_app()
    open_page(at, "predict")
    assert at.selectbox(key="predict_run").value == 2
    assert at.selectbox(key="predict_run").options[0].startswith("run 2")


# -- helpers behind the pages ----------------------------------------------------------------


def test_eta_uses_finished_epochs_or_the_observed_speed():
    progress = {"epoch": 2, "epochs": 3, "step": 5, "steps": 10}
    assert estimate_eta(progress, [20.0], None, 0.0) == pytest.approx(5 * 2 + 20)
    assert estimate_eta(progress, [], (100.0, 1), 104.0) == pytest.approx(5 * 1 + 10)
    assert estimate_eta(progress, [], None, 0.0) is None
    assert estimate_eta({}, [1.0], None, 0.0) is None


def test_small_helpers():
    assert format_duration(None) == "" and format_duration(5) == "5 s"
    assert format_duration(125) == "2 min 05 s" and format_duration(3725) == "1 h 02 min"
    assert unfreeze_choice("all") == (True, None) and unfreeze_choice("12") == (False, 12)
    labels = np.array([0, 0, 1, 2, 2, 2])
    classes = ["Abyssinian", "beagle", "pug"]
    assert sample_indices(labels, classes, 10, 0) == [0, 1, 2, 3, 4, 5]
    assert sample_indices(labels, classes, 10, 0, species_name="cat") == [0, 1]
    assert sample_indices(labels, classes, 10, 0, breed="pug") == [3, 4, 5]
    assert len(sample_indices(labels, classes, 2, 1)) == 2
    table = label_counts(
        {"classes": ["cat", "beagle"], "label_counts": {s: [1, 2] for s in ("train", "validation", "test")}}
    )
    assert table[table["split"] == "train"]["species"].tolist() == ["other", "dog"]


def test_runs_table_and_current_run(workspace):
    store = RunStore(workspace)
    assert current_run([]) is None
    done = store.create("head", {"train": {"backbone": "b", "epochs": 2}}, status="done")
    store.update_metrics(done, {"best_val_accuracy": 0.5, "test_accuracy": 0.25})
    queued = store.create("finetune", {"train": {"backbone": "b"}, "finetune": {"epochs": 1}}, parent=done)
    records = store.list()
    assert current_run(records).id == queued
    table = runs_frame(records)
    assert table["run"].tolist() == [queued, done]
    assert table["kind"].tolist() == [f"finetune of {done}", "head"]
    assert table["best val accuracy %"].tolist()[1] == 50.0 and table["epochs"].tolist() == [1, 2]


def test_preview_is_reproducible_and_varies_with_the_seed():
    from core.model.augmentation import preview_augmentations

    image = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    first = preview_augmentations(image, "flip,rotation=0.3", 4, seed=1, size=32)
    again = preview_augmentations(image, "flip,rotation=0.3", 4, seed=1, size=32)
    other = preview_augmentations(image, "flip,rotation=0.3", 4, seed=2, size=32)
    assert [a.shape for a in first] == [(32, 32, 3)] * 4 and first[0].dtype == np.uint8
    assert all((a == b).all() for a, b in zip(first, again, strict=True))
    assert any((a != b).any() for a, b in zip(first, other, strict=True))
    plain = preview_augmentations(image, "none", 3, seed=0, size=32)
    assert len(plain) == 3 and all((a == plain[0]).all() for a in plain)
