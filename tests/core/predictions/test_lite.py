"""The LiteRT copy of a run's model (core.predictions.lite): the same answers as Keras, for every backbone.

Each backbone is built with random weights and BatchNorm calibrated on coloured images (so the
classes' probabilities differ from photo to photo), saved as a finished run, copied with
`write_lite_model` and answered both ways.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from core.catalog.backbones import BACKBONES
from core.inference.export import write_lite_model
from core.inference.predict import Predictor
from core.predictions.lite import LitePredictor, lite_model_current, lite_predictor
from core.runs.layout import RunPaths
from core.runs.store import RunStore
from tests.apptest import jpeg_bytes, png_bytes
from tests.tiny_models import COLORS, calibrated_model, save_done_run

SIZE = 32


def photos() -> list[tuple[str, bytes]]:
    """A photo of each class colour and a flat blue one, as uploads."""
    shaded = [(f"colour{n}.png", png_bytes(tuple(int(c) for c in colour))) for n, colour in enumerate(COLORS)]
    return [*shaded, ("blue.jpg", jpeg_bytes())]


def finished_run(workspace, backbone: str, lite: bool = True):
    """(store, paths) of a finished run of a calibrated random `backbone`, with its LiteRT copy if `lite`."""
    store = RunStore(workspace)
    model = calibrated_model(backbone, SIZE)
    paths = store.paths(save_done_run(store, model))
    if lite:
        write_lite_model(model, paths)
    return store, paths


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_the_lite_copy_answers_as_the_keras_model(workspace, backbone) -> None:
    store, paths = finished_run(workspace, backbone)
    keras_answers = Predictor(paths).predict_many(photos(), top_k=3)
    lite = lite_predictor(paths)
    assert isinstance(lite, LitePredictor) and lite.image_size == SIZE
    lite_answers = lite.predict_many(photos(), top_k=3)
    spread = max(max(p for _, p in a.top) - min(p for _, p in a.top) for a in keras_answers)
    assert spread > 1e-3  # the photos' answers differ: the comparison below can fail
    for ours, theirs in zip(lite_answers, keras_answers, strict=True):
        assert [name for name, _ in ours.top] == [name for name, _ in theirs.top]
        assert np.allclose([p for _, p in ours.top], [p for _, p in theirs.top], atol=1e-4)
    (alone,) = lite.predict_many(photos()[:1], top_k=3)  # a batch of another size: tensors resized
    assert alone.top == lite_answers[0].top
    store.close()


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> RunPaths:
    """The paths of a finished MobileNetV3Small run with its LiteRT copy (shared: copy it to change it)."""
    store, paths = finished_run(tmp_path_factory.mktemp("lite") / "workspace", "mobilenetv3small")
    store.close()
    return paths


def private(paths: RunPaths, tmp_path) -> RunPaths:
    """A copy of the run's folder (file times kept) that a test may change."""
    return RunPaths(Path(shutil.copytree(paths.folder, tmp_path / "run")))


def test_there_is_no_lite_predictor_without_a_current_copy(small_run, tmp_path) -> None:
    paths = private(small_run, tmp_path)
    assert lite_model_current(paths) and lite_predictor(paths) is not None
    later = paths.lite_model.stat().st_mtime_ns + 1_000_000_000
    os.utime(paths.model, ns=(later, later))  # the model was replaced after its copy was written
    assert not lite_model_current(paths) and lite_predictor(paths) is None
    paths.lite_model.unlink()  # a run trained without a copy
    assert not lite_model_current(paths) and lite_predictor(paths) is None


def test_there_is_no_lite_predictor_without_litert(small_run, monkeypatch) -> None:
    assert lite_predictor(small_run) is not None
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # as if not installed
    assert lite_predictor(small_run) is None
