"""Run requests: what the dashboard and the CLI may queue (core.runs.requests).

Catches: a request the trainer would fail on minutes later (or train wrongly) being queued;
a fine-tuning run not inheriting its parent's data and head settings; a second request to
prepare a dataset starting a second download instead of joining the job already under way.
"""

from __future__ import annotations

import pytest

from core import config as cfg
from core.errors import BadInputError
from core.runs.requests import preparing, queue_finetune_run, queue_head_run, queue_prepare
from core.runs.store import RunStore

DATA = cfg.DataConfig(source="folder", path="/data/pets")


@pytest.mark.parametrize(
    "change",
    [
        {"epochs": 0},
        {"batch_size": 0},
        {"lr": 0.0},
        {"dropout": 1.0},
        {"dropout": -0.1},
        {"patience": -1},
        {"seed": -1},
        {"seed": 2**32},
        {"backbone": "vgg99"},
        {"augment": "spin=3"},
        {"image_size": 16},
    ],
)
def test_bad_head_requests_are_refused_before_they_are_queued(workspace, change):
    store = RunStore(workspace)
    with pytest.raises(BadInputError):
        queue_head_run(store, DATA, cfg.TrainConfig(**change))
    assert store.list() == []


def test_a_head_request_is_stored_with_its_image_size_resolved(workspace):
    store = RunStore(workspace)
    run_id = queue_head_run(store, DATA, cfg.TrainConfig(backbone="MobileNet-V2", image_size=None))
    record = store.get(run_id)
    assert (record.status, record.train.backbone, record.train.image_size) == ("queued", "mobilenetv2", 224)
    assert record.data == DATA


@pytest.mark.parametrize(
    "change", [{"epochs": 0}, {"lr": -1.0}, {"batch_size": 0}, {"patience": -2}, {"unfreeze": "top"}]
)
def test_bad_finetune_requests_are_refused(trained_copy, change):
    store = RunStore(trained_copy)
    before = len(store.list())
    with pytest.raises(BadInputError):
        queue_finetune_run(store, 1, cfg.FinetuneConfig(**change))
    assert len(store.list()) == before


def test_a_finetune_request_inherits_the_parents_data_and_head(trained_copy):
    store = RunStore(trained_copy)
    run_id = queue_finetune_run(store, 1, cfg.FinetuneConfig(unfreeze="12", epochs=2))
    parent, child = store.get(1), store.get(run_id)
    assert (child.kind, child.parent) == ("finetune", 1)
    assert (child.data, child.train) == (parent.data, parent.train)
    assert child.finetune == cfg.FinetuneConfig(unfreeze="12", epochs=2)


def test_a_prepare_request_joins_the_job_for_the_same_source_only(workspace):
    store = RunStore(workspace)
    tfds = cfg.DataConfig()
    first = queue_prepare(store, tfds)
    assert store.get(first).kind == "prepare" and store.get(first).data == tfds
    assert (
        queue_prepare(store, cfg.DataConfig(validation_fraction=0.2)) == first
    )  # the split is not the source
    elsewhere = queue_prepare(store, cfg.DataConfig(path="/other/tfds"))
    folder = queue_prepare(store, DATA)
    assert len({first, elsewhere, folder}) == 3
    assert preparing(store) is None  # queued, not running

    store.start(first)  # the worker claimed it
    assert queue_prepare(store, tfds) == first
    assert preparing(store).id == first
    store.finish(first, "done")
    again = queue_prepare(store, tfds)  # prepared once; asked again (its folder was deleted): a new job
    assert again not in (first, elsewhere, folder)
    store.request_cancel(again)
    assert queue_prepare(store, tfds) not in (again, first)  # a cancelled job is not joined
    with pytest.raises(BadInputError):
        queue_prepare(store, cfg.DataConfig(source="imagenet"))


def test_a_running_training_run_is_not_a_preparation(workspace):
    store = RunStore(workspace)
    store.start(queue_head_run(store, DATA, cfg.TrainConfig()))
    assert preparing(store) is None
