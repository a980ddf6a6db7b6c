"""The Predict page (views/predict.py) under AppTest: top-5 per photo, the best run first, Grad-CAM.

No network, no GPU: tiny MobileNetV3Small models with random weights (tests/tiny_models.py).
"""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.runs.layout import RunPaths
from core.runs.store import RunStore
from core.tables.predictions import columns
from tests.apptest import jpeg_bytes, missing_module, open_page, png_bytes, start_app, texts
from tests.conftest import PET_BREEDS
from tests.tiny_models import CLASS_NAMES


def ranked(at, index: int) -> list[tuple[str, float]]:
    """(class, percent) of photo `index`'s top-5 bars, top to bottom, as the page labels them."""
    bars = at.get_by_key(f"top5_{index}").progress
    pairs = [bar.text.rsplit(" · ", 1) for bar in bars]
    return [(name, float(percent.rstrip("%"))) for name, percent in pairs]


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
    top = ranked(at, 0)
    names = [name for name, _ in top]
    assert len(names) == 5 and set(names) <= set(PET_BREEDS)
    assert [p for _, p in top] == sorted((p for _, p in top), reverse=True)  # most likely first
    best = next(m.value for m in at.markdown if m.value.startswith("Most likely"))
    assert best == f"Most likely **{names[0]}** ({top[0][1]:.1f}%)"
    assert "broken.jpg" in texts(at.error)[0] and len(at.error) == 1

    at.toggle(key="use_camera").set_value(True).run()
    at.camera_input(key="camera_photo").upload("photo.jpg", jpeg_bytes()).run()
    assert not at.exception
    assert len(ranked(at, 2)) == 5  # the camera photo, after the two uploads
    assert len(loads) == 1  # the model was loaded once and kept


def test_predict_defaults_to_the_best_run(trained_copy):
    store = RunStore(trained_copy)
    shutil.copytree(RunPaths.of(trained_copy, 1).folder, RunPaths.of(trained_copy, 2).folder)
    run_id = store.create("head", store.get(1).config, status="done")
    store.update_metrics(run_id, {"best_val_accuracy": 0.99})
    assert run_id == 2
    at = start_app()
    open_page(at, "predict")
    assert at.selectbox(key="predict_run").value == 2
    assert at.selectbox(key="predict_run").options[0].startswith("run 2")


@pytest.fixture
def explainable(workspace) -> Path:
    """A workspace whose finished run has calibrated BatchNorm at 64 px, so heatmaps depend on the class."""
    import keras
    import streamlit as st

    from tests.tiny_models import save_done_run, saved_in_a_fresh_process

    st.cache_resource.clear()  # models and Grad-CAM objects other tests' servers left in this process
    saved = saved_in_a_fresh_process(
        workspace.parent / "calibrated.keras", "calibrated_model", "mobilenetv3small", 64
    )
    model = keras.saving.load_model(saved)
    store = RunStore(workspace)
    save_done_run(store, model)
    store.close()
    return workspace


def split_photo() -> bytes:
    """Red on the left, blue on the right: the classes' heatmaps differ in where they are hot."""
    pixels = np.zeros((48, 80, 3), dtype=np.uint8)
    pixels[:, :40] = (200, 40, 40)
    pixels[:, 40:] = (40, 40, 200)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def gradcam(at) -> tuple[str, str]:
    """(caption, url) of the only Grad-CAM overlay on the page."""
    (image,) = [image.proto.imgs[0] for image in at.image if image.proto.imgs[0].caption.startswith("Grad")]
    return image.caption, image.url


def test_predict_shows_grad_cam_for_the_top_class_and_any_other(explainable):
    at = start_app()
    open_page(at, "predict")
    at.file_uploader(key="predict_upload").set_value(
        [("split.png", split_photo(), "image/png"), ("broken.jpg", b"not an image", "image/jpeg")]
    ).run()
    assert not at.exception
    assert len(at.error) == 1 and "broken.jpg" in texts(at.error)[0]  # the bad file keeps its message
    best = next(m.value for m in at.markdown if m.value.startswith("Most likely")).split("**")[1]
    caption, url = gradcam(at)
    assert caption == f"Grad-CAM: {best}"
    select = at.selectbox(key="gradcam_class_0")
    assert select.value == CLASS_NAMES.index(best)

    seen = {url}
    others = [i for i in range(3) if i != select.value]
    for index in others:
        at.selectbox(key="gradcam_class_0").set_value(index).run()
        assert not at.exception and len(at.error) == 1
        caption, url = gradcam(at)
        assert caption == f"Grad-CAM: {CLASS_NAMES[index]}"
        seen.add(url)
    assert len(seen) == 3  # each class paints its own overlay

    at.slider(key="gradcam_alpha").set_value(0.0).run()  # no heatmap: the photo itself
    assert gradcam(at)[1] not in seen


def test_several_photos_are_answered_in_one_batch_top5_first_then_grad_cam(trained_copy, monkeypatch):
    import core.inference.explain
    import core.inference.predict
    import ui.widgets

    batches, drawn = [], []
    Predictor, GradCam = core.inference.predict.Predictor, core.inference.explain.GradCam
    real_probabilities, real_top5, real_gradcam = (
        Predictor.probabilities,
        ui.widgets.top_predictions,
        GradCam.__call__,
    )
    monkeypatch.setattr(
        Predictor, "probabilities", lambda self, x: batches.append(len(x)) or real_probabilities(self, x)
    )
    monkeypatch.setattr(
        ui.widgets, "top_predictions", lambda top, key: drawn.append("top-5") or real_top5(top, key)
    )
    monkeypatch.setattr(
        GradCam,
        "__call__",
        lambda self, image, *a: (image.any() and drawn.append("grad-cam")) or real_gradcam(self, image, *a),
    )
    at = start_app()
    open_page(at, "predict")
    photos = [("red.png", png_bytes(), "image/png"), ("blue.jpg", jpeg_bytes(), "image/jpeg")]
    photos += [
        ("broken.jpg", b"not an image at all", "image/jpeg"),
        ("green.png", png_bytes((40, 200, 40)), "image/png"),
    ]
    at.file_uploader(key="predict_upload").set_value(photos).run()
    assert not at.exception

    assert batches == [1, 3]  # the background load's blank warm-up image, then the three photos at once
    for index in (0, 1, 3):
        names = [name for name, _ in ranked(at, index)]
        assert len(names) == 5 and set(names) <= set(PET_BREEDS)
    (error,) = texts(at.error)
    assert error.startswith("broken.jpg is") and error.endswith(".")
    with pytest.raises(KeyError):
        ranked(at, 2)  # the unreadable photo has its reason, no ranking
    assert sum(m.value.startswith("Most likely") for m in at.markdown) == 3
    assert drawn == ["top-5"] * 3 + ["grad-cam"] * 3  # every top-5 is on screen before any Grad-CAM runs
    assert len([i for i in at.image if i.proto.imgs[0].caption.startswith("Grad-CAM")]) == 3


def test_choosing_a_run_loads_its_model_and_grad_cam_in_the_background(trained_copy, monkeypatch):
    import time

    import core.inference.explain
    import core.inference.predict

    loads, traced = [], []
    real_load, real_gradcam = core.inference.predict.load_model, core.inference.explain.GradCam.__call__
    monkeypatch.setattr(
        core.inference.predict, "load_model", lambda path: loads.append(path) or real_load(path)
    )
    monkeypatch.setattr(
        core.inference.explain.GradCam,
        "__call__",
        lambda self, *a: traced.append(1) or real_gradcam(self, *a),
    )
    at = start_app()
    open_page(at, "predict")  # no photo yet
    assert not at.exception and not at.error
    deadline = time.monotonic() + 120
    while not traced and time.monotonic() < deadline:
        time.sleep(0.1)
    assert loads == [RunPaths.of(trained_copy, 1).model] and traced == [1]
    at.file_uploader(key="predict_upload").set_value(("cat.png", png_bytes(), "image/png")).run()
    assert len(ranked(at, 0)) == 5
    assert len(loads) == 1  # the photo used the model loaded in the background


def test_an_engine_that_cannot_load_is_one_sentence_under_the_picker(trained_copy, monkeypatch):
    from ui import engine

    broken = engine.Loading(lambda: engine.import_modules(missing_module), "test-engine")
    monkeypatch.setattr(engine, "start", lambda: broken)
    at = start_app()
    open_page(at, "predict")
    at.file_uploader(key="predict_upload").set_value(("cat.png", png_bytes(), "image/png")).run()
    assert not at.exception
    (error,) = texts(at.error)
    assert error.startswith("The model engine (TensorFlow) could not be loaded")
    assert at.selectbox(key="predict_run").value == 1
    with pytest.raises(KeyError):
        ranked(at, 0)  # no top-5 drawn


@pytest.fixture
def colour_run(workspace) -> Path:
    """A workspace whose finished run tells the three colours of tests/tiny_models.py apart."""
    from tests.tiny_models import save_done_run, tiny_trained_model

    store = RunStore(workspace)
    save_done_run(store, tiny_trained_model("mobilenetv2", 32))
    store.close()
    return workspace


def photo_zip(folder: Path) -> bytes:
    """A photo of each colour class (two nested), a broken .jpg and a text file, zipped."""
    from tests.conftest import save_image
    from tests.tiny_models import COLORS

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, colour in zip(("red.png", "more/green.jpg", "more/blue.png"), COLORS, strict=True):
            photo = save_image(folder / name, tuple(int(c) for c in colour), size=(32, 32))
            archive.writestr(name, photo.read_bytes())
        archive.writestr("more/broken.jpg", b"not an image at all")
        archive.writestr("notes.txt", "not a photo")
    return buffer.getvalue()


def gallery_captions(at) -> list[str]:
    return [i.proto.imgs[0].caption for i in at.image if " · " in i.proto.imgs[0].caption]


def test_a_zip_of_photos_gives_a_table_a_csv_its_unreadable_files_and_a_gallery_by_class(
    colour_run, monkeypatch, tmp_path
):
    import core.inference.predict

    batches = []
    real = core.inference.predict.Predictor.probabilities
    monkeypatch.setattr(
        core.inference.predict.Predictor,
        "probabilities",
        lambda self, x: batches.append(len(x)) or real(self, x),
    )
    at = start_app()
    open_page(at, "predict")
    at.file_uploader(key="batch_zip").set_value(("photos.zip", photo_zip(tmp_path), "application/zip")).run()
    assert not at.exception

    table = at.dataframe[0].value
    assert list(table.columns) == columns(3)  # the run knows three classes
    assert table["file"].tolist() == ["more/blue.png", "more/green.jpg", "red.png"]
    assert set(table["class_1"]) <= set(CLASS_NAMES)
    assert batches == [1, 3]  # the warm-up image, then the three photos in one pass
    assert at.download_button(key="batch_csv").label == "Download the CSV"
    (warning,) = texts(at.warning)
    assert warning.startswith("1 files could not be read")
    assert any(m.value.startswith("- `more/broken.jpg`: broken.jpg is") for m in at.markdown)
    expected = [
        f"{f.rsplit('/', 1)[-1]} · {c} " for f, c in zip(table["file"], table["class_1"], strict=True)
    ]
    captions = gallery_captions(at)
    assert len(captions) == 3 and all(
        c.startswith(e) for c, e in zip(sorted(captions), sorted(expected), strict=True)
    )

    picker = at.selectbox(key="batch_class")
    assert table["class_1"].nunique() >= 2  # so that filtering leaves some photos out
    assert picker.value is None and len(picker.options) == 1 + table["class_1"].nunique()
    best = table["class_1"].iloc[0]
    picker.set_value(best).run()
    assert not at.exception
    captions = gallery_captions(at)
    assert len(captions) == (table["class_1"] == best).sum() and all(f"· {best} " in c for c in captions)
    assert batches == [1, 3]  # filtering predicts nothing again


def test_a_folder_inside_the_data_roots_is_predicted_and_one_outside_is_refused(trained_copy, tmp_path):
    from tests.conftest import save_image

    save_image(tmp_path / "new" / "a.jpg", PET_BREEDS["pug"])
    save_image(tmp_path / "new" / "deeper" / "b.png", PET_BREEDS["Bengal"], fmt="PNG")
    at = start_app()
    open_page(at, "predict")
    at.text_input(key="batch_folder").input("/etc").run()
    at.button(key="batch_folder_go").click().run()
    assert not at.exception
    (error,) = texts(at.error)
    assert "outside the data folders" in error and "/etc" not in error
    assert not at.dataframe

    at.text_input(key="batch_folder").input(str(tmp_path / "new")).run()
    assert not at.dataframe  # nothing predicted before the button is clicked
    at.button(key="batch_folder_go").click().run()
    assert not at.exception and not at.error
    assert at.dataframe[0].value["file"].tolist() == ["a.jpg", "deeper/b.png"]
    assert not at.warning and len(gallery_captions(at)) == 2


def test_the_first_photos_are_answered_by_the_lite_copy_while_the_model_loads(trained_copy, monkeypatch):
    """The Keras model's load is held until the LiteRT copy has answered; then later photos use Keras.

    The copy is written after the page was first drawn (as `python -m core lite-copy` would): it is used.
    """
    import threading

    import core.inference.predict
    import core.predictions.lite
    from core.inference.export import write_lite_model

    paths = RunPaths.of(trained_copy, 1)
    model = core.inference.predict.Predictor(paths).model
    answered: list[tuple[str, list[str]]] = []
    lite_answered = threading.Event()

    def spy(cls, kind):
        real = cls.predict_many

        def predict_many(self, items, top_k=5):
            answered.append((kind, [name for name, _ in items]))
            if kind == "lite":
                lite_answered.set()
            return real(self, items, top_k)

        monkeypatch.setattr(cls, "predict_many", predict_many)

    spy(core.predictions.lite.LitePredictor, "lite")
    spy(core.inference.predict.Predictor, "keras")
    real_for_run = core.inference.predict.Predictor.for_run.__func__

    def held_for_run(cls, store, run_id):
        assert lite_answered.wait(60), "the page never asked the LiteRT copy"
        return real_for_run(cls, store, run_id)

    monkeypatch.setattr(core.inference.predict.Predictor, "for_run", classmethod(held_for_run))
    at = start_app()
    open_page(at, "predict")
    write_lite_model(model, paths)
    at.file_uploader(key="predict_upload").set_value([("cat.png", png_bytes(), "image/png")]).run()
    assert not at.exception
    assert answered == [("lite", ["cat.png"])]
    assert len(ranked(at, 0)) == 5 and gradcam(at)[0].startswith("Grad-CAM: ")  # Grad-CAM followed

    photos = [("cat.png", png_bytes(), "image/png"), ("dog.jpg", jpeg_bytes(), "image/jpeg")]
    at.file_uploader(key="predict_upload").set_value(photos).run()
    assert not at.exception
    assert answered[1:] == [("keras", ["cat.png", "dog.jpg"])]  # the Keras model, now loaded
    assert len(ranked(at, 1)) == 5
