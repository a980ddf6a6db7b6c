"""What a finished run leaves (core.training.artifacts): its LiteRT copy, or a line saying why not."""

from __future__ import annotations

import core.training.artifacts
from core.config import DataConfig, TrainConfig
from core.inference.predict import Predictor
from core.predictions.lite import lite_model_current, lite_predictor
from core.runs.requests import queue_head_run
from core.runs.store import RunStore
from core.training.worker import run_queue
from tests.apptest import png_bytes
from tests.tiny_models import TINY_RECIPE, finished_head_run


def test_a_finished_run_leaves_a_current_lite_copy_that_answers_as_its_model(workspace, pets, lite_copies):
    paths = RunStore(workspace).paths(finished_head_run(workspace, pets))
    assert lite_model_current(paths)
    photo = [("red.png", png_bytes())]
    (lite,) = lite_predictor(paths).predict_many(photo)
    (keras,) = Predictor(paths).predict_many(photo)
    assert [name for name, _ in lite.top] == [name for name, _ in keras.top]


def test_a_fine_tuning_run_leaves_its_own_current_lite_copy(trained_copy, lite_copies):
    from core.config import FinetuneConfig
    from core.runs.requests import queue_finetune_run

    store = RunStore(trained_copy)
    tune = queue_finetune_run(store, 1, FinetuneConfig(epochs=1, lr=1e-4))
    run_queue(store, say=lambda line: None)
    assert store.get(tune).status == "done"
    assert lite_model_current(store.paths(tune)) and not store.paths(1).lite_model.exists()


def test_petlab_lite_copy_0_keeps_no_copy(trained):
    """The tests' default (tests/conftest.py), and a person's choice to save the disk space."""
    paths = RunStore(trained).paths(1)
    assert paths.model.is_file() and not paths.lite_model.exists()


def test_a_run_whose_copy_fails_still_finishes_and_says_why(workspace, pets, lite_copies, monkeypatch):
    def fail(model, paths):
        raise RuntimeError("converter crashed")

    monkeypatch.setattr(core.training.artifacts, "write_lite_model", fail)
    store = RunStore(workspace)
    data = DataConfig(source="folder", path=str(pets))
    run_id = queue_head_run(store, data, TrainConfig(epochs=1, batch_size=16, **TINY_RECIPE))
    lines: list[str] = []
    run_queue(store, say=lines.append)
    assert store.get(run_id).status == "done"
    assert not store.paths(run_id).lite_model.exists()
    (line,) = [line for line in lines if "LiteRT" in line]
    assert "RuntimeError" in line and line.endswith("the dashboard will answer with the Keras model.")
