"""The Augmentation page (views/augmentation.py) under AppTest, and the preview it draws."""

from __future__ import annotations

import numpy as np

from core.catalog.augmentations import AUGMENTATIONS
from core.config import TrainConfig
from core.runs.store import RunStore
from tests.apptest import TINY, missing_module, open_page, png_bytes, start_app


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
    assert RunStore(workspace).get(1).train.augment == "rotation=0.25,zoom"

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


def test_augmentation_preview_of_an_unreadable_photo_says_why(workspace):
    at = start_app()
    open_page(at, "augmentation")
    at.radio(key="aug_image_mode").set_value("upload").run()
    at.file_uploader(key="aug_upload").set_value(("broken.png", b"not an image", "image/png")).run()
    assert not at.exception and len(at.error) == 1 and not at.image


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


def test_the_controls_draw_at_once_and_the_preview_appears_once_the_engine_is_ready(workspace, monkeypatch):
    import threading

    from ui import engine

    gate = threading.Event()
    loading = engine.Loading(lambda: gate.wait(60) and engine.import_modules(), "test-engine")
    monkeypatch.setattr(engine, "start", lambda: loading)
    at = start_app()
    open_page(at, "augmentation")
    at.radio(key="aug_image_mode").set_value("upload").run()
    assert not loading.ready() and len(at.checkbox) == len(AUGMENTATIONS)  # the controls did not wait
    threading.Timer(1.0, gate.set).start()  # the engine becomes ready while the page waits for it
    at.file_uploader(key="aug_upload").set_value(("mine.png", png_bytes(), "image/png")).run()
    assert loading.ready() and not at.exception
    assert len(at.image) == 9 and not at.info  # the preview, and no "Loading the model engine…" left


def test_an_engine_that_cannot_load_leaves_the_controls_and_says_why(workspace, monkeypatch):
    from ui import engine

    broken = engine.Loading(lambda: engine.import_modules(missing_module), "test-engine")
    monkeypatch.setattr(engine, "start", lambda: broken)
    at = start_app()
    open_page(at, "augmentation")
    at.radio(key="aug_image_mode").set_value("upload").run()
    at.file_uploader(key="aug_upload").set_value(("mine.png", png_bytes(), "image/png")).run()
    assert not at.exception and not at.image
    (error,) = [e.value for e in at.error]
    assert error.startswith("The model engine (TensorFlow) could not be loaded")
    at.checkbox(key="aug_rotation").check().run()  # the controls still work
    assert at.session_state["augment_spec"] == "flip,rotation"
