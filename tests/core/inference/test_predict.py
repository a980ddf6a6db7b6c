"""Prediction (core.inference.predict, core.predictions.answers): several photos in one batched pass."""

from __future__ import annotations

import numpy as np
import pytest

import core.predictions.answers
from core.inference.predict import Predictor
from core.runs.store import RunStore
from tests.apptest import jpeg_bytes, png_bytes


@pytest.fixture
def predictor(trained_copy) -> Predictor:
    return Predictor.for_run(RunStore(trained_copy), 1)


@pytest.fixture
def batches(predictor, monkeypatch) -> list[int]:
    """The batch size of every forward pass the predictor makes."""
    sizes: list[int] = []
    real = predictor.probabilities
    monkeypatch.setattr(predictor, "probabilities", lambda x: sizes.append(len(x)) or real(x))
    return sizes


def test_predict_many_answers_every_readable_photo_in_one_pass(predictor, batches):
    photos = [("red.png", png_bytes()), ("bad.jpg", b"not an image"), ("blue.jpg", jpeg_bytes())]
    results = predictor.predict_many(photos, top_k=5)
    assert batches == [2]
    assert [r.name for r in results] == ["red.png", "bad.jpg", "blue.jpg"]
    bad = results[1]
    assert bad.top == [] and bad.error.startswith("bad.jpg is") and bad.error.endswith(".")
    for result, (name, data) in zip(results[::2], photos[::2], strict=True):
        alone = predictor.predict_image(data, 5, name)  # the same answer as one photo at a time
        assert [c for c, _ in result.top] == [c for c, _ in alone.top]
        assert np.allclose([p for _, p in result.top], [p for _, p in alone.top], atol=1e-5)
        assert result.error is None and len(result.top) == 5


def test_predict_many_splits_a_large_upload_into_bounded_batches(predictor, batches, monkeypatch):
    monkeypatch.setattr(core.predictions.answers, "MAX_BATCH", 2)
    results = predictor.predict_many([(f"{n}.png", png_bytes()) for n in range(5)], top_k=3)
    assert batches == [2, 2, 1] and all(len(r.top) == 3 for r in results)


def test_predict_many_of_only_unreadable_files_runs_no_pass(predictor, batches):
    results = predictor.predict_many([("a.jpg", b""), ("b.jpg", b"<html>")])
    assert batches == [] and all(r.error for r in results)
