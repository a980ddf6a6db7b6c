"""Queuing experiments (core.runs.requests): a sweep's settings and a finder's config are checked first.

No TensorFlow: the dashboard queues these. A bad request queues nothing.
"""

from __future__ import annotations

import pytest

from core import config as cfg
from core.catalog.experiments import grid
from core.errors import BadInputError
from core.runs.requests import queue_head_run, queue_lr_find, queue_sweep
from core.runs.store import RunStore

DATA = cfg.DataConfig(source="folder", path="/nowhere")
TRAIN = cfg.TrainConfig(backbone="mobilenetv3small", weights="none", image_size=32)


def test_a_sweep_is_queued_with_its_settings_typed(tmp_path) -> None:
    store = RunStore(tmp_path)
    settings = grid({"lr": [1e-3, "3e-3"], "batch_size": [16.0, 32]})
    sweep_id = queue_sweep(store, DATA, TRAIN, settings)
    record = store.get(sweep_id)
    assert (record.kind, record.status, record.parent) == ("sweep", "queued", None)
    assert record.config["sweep"]["settings"] == [
        {"lr": 1e-3, "batch_size": 16},
        {"lr": 1e-3, "batch_size": 32},
        {"lr": 3e-3, "batch_size": 16},
        {"lr": 3e-3, "batch_size": 32},
    ]
    assert record.train.backbone == "mobilenetv3small" and record.data == DATA
    assert not record.trains and record.experiment


@pytest.mark.parametrize(
    ("train", "settings", "words"),
    [
        (TRAIN, [{"dropout": 1.0}], "dropout"),
        (TRAIN, [{"lr": 1e-3}, {"momentum": 0.9}], "momentum"),
        (TRAIN, [], "1 to 100"),
        (cfg.TrainConfig(backbone="vgg99"), [{"lr": 1e-3}], "vgg99"),
        (cfg.TrainConfig(**{**cfg.to_dict(TRAIN), "augment": "flip,rotation=0.1"}), [{}], "augmentation"),
        (cfg.TrainConfig(**{**cfg.to_dict(TRAIN), "patience": -1}), [{}], "patience"),
    ],
    ids=["dropout", "unknown", "empty", "backbone", "augmentation", "patience"],
)
def test_a_bad_sweep_is_refused_and_nothing_is_queued(tmp_path, train, settings, words) -> None:
    store = RunStore(tmp_path)
    with pytest.raises(BadInputError) as info:
        queue_sweep(store, DATA, train, settings)
    assert words in str(info.value).lower() and "\n" not in str(info.value)
    assert store.list() == []


def test_an_lr_find_job_is_queued_and_refuses_uncacheable_augmentation(tmp_path) -> None:
    store = RunStore(tmp_path)
    job = store.get(queue_lr_find(store, DATA, TRAIN))
    assert (job.kind, job.status, job.train.image_size) == ("lr_find", "queued", 32)
    rotating = cfg.TrainConfig(**{**cfg.to_dict(TRAIN), "augment": "rotation=0.2"})
    with pytest.raises(BadInputError) as info:
        queue_lr_find(store, DATA, rotating)
    assert "Augmentation page" in info.value.dashboard
    assert len(store.list()) == 1


def test_label_smoothing_is_checked_like_dropout(tmp_path) -> None:
    store = RunStore(tmp_path)
    smoothing = cfg.TrainConfig(**{**cfg.to_dict(TRAIN), "label_smoothing": 1.0})
    with pytest.raises(BadInputError, match="Label smoothing"):
        queue_head_run(store, DATA, smoothing)
    assert store.list() == []
