"""Run requests: validate a head-training, fine-tuning, resume or data-preparation request and queue it.

No TensorFlow: the dashboard queues runs from here and a worker process
(core.training.worker) trains them. A failed run resumes from its per-epoch backup
(core.runs.layout.RunBackup), which the trainer writes (core.training.callbacks) and this module reads.

Downloading and preparing a data source is a "prepare" job of the same queue
(core.training.prepare), so it runs in the worker, not in a page: a request for a source
that is already queued or being prepared joins that job instead of starting a second download.

Experiments on cached features are jobs of the same queue too: a learning-rate finder pass
(`queue_lr_find`) and a sweep (`queue_sweep`, its settings checked and listed here), both on a
head-training config checked as a head run's is (`check_head_request`).

Head runs, finder passes and sweeps train on the label curation of their data (`curated`): the
relabel and exclude marks saved for the source (core.curation.marks), frozen when the run is queued
and named in its DataConfig.curation; a fine-tuning run keeps its parent's.

Analysis jobs study a finished training run on its backbone features (`queue_analysis`: the
embedding map, the label-issue ranking); a request joins the same job queued or running for
that run, and `latest_analysis` finds the newest finished one a page shows.
"""

from __future__ import annotations

import dataclasses

from core import config as cfg
from core.catalog.augmentations import parse_spec
from core.catalog.backbones import default_image_size, get_backbone
from core.catalog.experiments import Settings, cacheable, check_settings
from core.curation.marks import take_snapshot
from core.errors import BadInputError
from core.runs.layout import RunBackup
from core.runs.records import ANALYSIS_KINDS, LR_FIND, PREPARE, SWEEP, RunRecord
from core.runs.store import RunStore


def resumable_epoch(store: RunStore, run_id: int) -> int:
    """How many epochs a run's backup holds (0: nothing to resume from)."""
    return RunBackup(store.paths(run_id).backup).epochs_done()


def resume_run(store: RunStore, run_id: int) -> int:
    """Queue a failed run again to continue from its backup; returns the epochs already done."""
    record = store.get(run_id)
    if record.status != "failed":
        raise BadInputError(f"Run {run_id} is {record.status}; only a failed run can be resumed.")
    done = resumable_epoch(store, run_id)
    if done < 1:
        raise BadInputError(
            f"Run {run_id} failed before it finished an epoch, so there is nothing to resume; "
            "start a new run."
        )
    store.requeue(run_id)
    return done


def check_head_request(data: cfg.DataConfig, train: cfg.TrainConfig) -> dict:
    """Check a head-training request; returns its run config (backbone name and image size resolved)."""
    backbone = get_backbone(train.backbone)
    if train.epochs < 1 or train.batch_size < 1 or train.lr <= 0:
        raise BadInputError("Epochs, batch size and learning rate must all be positive.")
    for name, value in (("Dropout", train.dropout), ("Label smoothing", train.label_smoothing)):
        if not 0 <= value < 1:
            raise BadInputError(f"{name} is a fraction from 0 up to (not including) 1, not {value}.")
    check_schedule(train.patience, train.seed)
    if data.source not in cfg.SOURCES:
        raise BadInputError(f"Unknown source {data.source!r}; choose one of: {', '.join(cfg.SOURCES)}.")
    parse_spec(train.augment)  # fails early on a bad spec
    image_size = default_image_size(backbone.name, train.image_size)
    if image_size < 32:
        raise BadInputError(f"Image size {image_size} is too small; use at least 32 px.")
    train_values = cfg.to_dict(train) | {"backbone": backbone.name, "image_size": image_size}
    return {"data": cfg.to_dict(data), "train": train_values}


def queue_head_run(
    store: RunStore, data: cfg.DataConfig, train: cfg.TrainConfig, curation: bool = True
) -> int:
    """Validate a head-training request and queue it; returns the run id.

    With `curation` the run trains on the label marks saved for its data now (`curated`).
    """
    return store.create("head", check_head_request(curated(store, data, curation), train))


def curated(store: RunStore, data: cfg.DataConfig, curation: bool = True) -> cfg.DataConfig:
    """`data` with the label curation a run queued now trains on (DataConfig.curation).

    The relabel and exclude marks saved for its source (core.curation.marks) are frozen in a
    snapshot, so marks edited later leave the queued run alone; None without marks or `curation`.
    """
    return dataclasses.replace(data, curation=take_snapshot(store.workspace, data) if curation else None)


def check_experiment_request(data: cfg.DataConfig, train: cfg.TrainConfig) -> dict:
    """Check the head-training config of an experiment on cached features; returns its run config."""
    config = check_head_request(data, train)
    if not cacheable(train.augment):
        raise BadInputError(
            f"Experiments on cached features need augmentation 'none' or 'flip', not {train.augment!r}; "
            "change the augmentation or train single runs instead.",
            dashboard="Experiments on cached features need no augmentation or the flip alone; "
            "change it on the Augmentation page.",
        )
    return config


def queue_lr_find(store: RunStore, data: cfg.DataConfig, train: cfg.TrainConfig) -> int:
    """Queue a learning-rate finder pass for a head-training config; returns the job's id."""
    return store.create(LR_FIND, check_experiment_request(curated(store, data), train))


def queue_sweep(
    store: RunStore, data: cfg.DataConfig, train: cfg.TrainConfig, settings: list[Settings]
) -> int:
    """Queue a sweep: a head per setting (overrides of `train`); returns the sweep's id.

    Every member's config is checked now, so a bad setting is refused before anything runs.
    """
    settings = check_settings(settings)
    config = check_experiment_request(curated(store, data), train)
    for setting in settings:
        check_head_request(data, dataclasses.replace(train, **setting))
    return store.create(SWEEP, config | {"sweep": {"settings": settings}})


def queue_finetune_run(store: RunStore, parent_id: int, finetune: cfg.FinetuneConfig) -> int:
    """Validate a fine-tuning request on a finished run and queue it; returns the run id."""
    parent = store.get(parent_id)
    if parent.status != "done":
        raise BadInputError(f"Run {parent_id} is {parent.status}; fine-tune from a finished (done) run.")
    if parent.broken:
        raise BadInputError(parent.broken)
    if not store.paths(parent_id).model.is_file():
        raise BadInputError(f"Run {parent_id} has no saved model; train a new head run first.")
    if finetune.epochs < 1 or finetune.lr <= 0:
        raise BadInputError("Fine-tuning epochs and learning rate must be positive.")
    if finetune.batch_size is not None and finetune.batch_size < 1:
        raise BadInputError(f"The fine-tuning batch size must be at least 1, not {finetune.batch_size}.")
    check_schedule(finetune.patience, finetune.seed)
    cfg.parse_unfreeze(finetune.unfreeze)
    # The parent's data and head settings: the new run trains on the same.
    config = {
        "data": cfg.to_dict(parent.data),
        "train": cfg.to_dict(parent.train),
        "finetune": cfg.to_dict(finetune),
    }
    return store.create("finetune", config, parent=parent_id)


def check_schedule(patience: int, seed: int) -> None:
    """BadInputError for a negative early-stopping patience or a seed numpy cannot take."""
    if patience < 0:
        raise BadInputError(f"Early-stopping patience is 0 (off) or more epochs, not {patience}.")
    if not 0 <= seed < 2**32:
        raise BadInputError(f"The seed must be a whole number from 0 to {2**32 - 1}, not {seed}.")


def queue_prepare(store: RunStore, data: cfg.DataConfig) -> int:
    """Queue downloading and preparing `data`'s source in the worker; returns the job's id.

    A job already queued or running for the same source is joined: its id is returned and
    nothing new is queued. (Two requests at the very same instant may both queue one; jobs
    run one at a time, so the second finds the data prepared and ends at once.)
    """
    if data.source not in cfg.SOURCES:
        raise BadInputError(f"Unknown source {data.source!r}; choose one of: {', '.join(cfg.SOURCES)}.")
    running = prepare_job(store, data)
    if running is not None:
        return running.id
    return store.create(PREPARE, {"data": cfg.to_dict(data)})


def prepare_job(store: RunStore, data: cfg.DataConfig) -> RunRecord | None:
    """The queued or running prepare job for `data`'s source (the oldest), or None."""
    jobs = [r for r in store.list() if r.kind == PREPARE and r.active and same_source(r.data, data)]
    return min(jobs, key=lambda r: r.id) if jobs else None


def last_prepare_job(store: RunStore, data: cfg.DataConfig) -> RunRecord | None:
    """The newest prepare job for `data`'s source, whatever its status, or None."""
    return next((r for r in store.list() if r.kind == PREPARE and same_source(r.data, data)), None)


def preparing(store: RunStore) -> RunRecord | None:
    """The prepare job running now, if any: one small registry read (for a page drawn on every rerun)."""
    active = store.active()
    return active if active is not None and active.kind == PREPARE else None


def same_source(a: cfg.DataConfig, b: cfg.DataConfig) -> bool:
    """Whether two data settings read the same source (the same kind at the same path)."""
    return (a.source, a.path or None) == (b.source, b.path or None)


def queue_analysis(store: RunStore, kind: str, run_id: int, options: dict | None = None) -> int:
    """Queue analysis job `kind` (records.ANALYSIS_KINDS) of finished training run `run_id`; returns its id.

    The job gets the run's data and training config, plus `options` (its own settings, under the
    kind's name). The same job queued or running for the run (same options) is joined instead.
    """
    if kind not in ANALYSIS_KINDS:
        raise BadInputError(f"Unknown analysis {kind!r}; choose one of: {', '.join(ANALYSIS_KINDS)}.")
    run = store.get(run_id)
    if not run.trains or run.status != "done":
        raise BadInputError(
            f"Run {run_id} is not a finished training run; choose a done head or fine-tuning run."
        )
    if run.broken:
        raise BadInputError(run.broken)
    options = dict(options or {})
    for job in store.list():
        if job.kind == kind and job.parent == run_id and job.active and job.config.get(kind, {}) == options:
            return job.id
    config = {"data": cfg.to_dict(run.data), "train": cfg.to_dict(run.train), kind: options}
    if run.finetune is not None:
        config["finetune"] = cfg.to_dict(run.finetune)
    return store.create(kind, config, parent=run_id)


def latest_analysis(
    store: RunStore, kind: str, run_id: int, records: list[RunRecord] | None = None
) -> RunRecord | None:
    """The newest analysis job `kind` of run `run_id` (any status), or None; `records`: runs already read."""
    jobs = [
        r for r in (store.list() if records is None else records) if r.kind == kind and r.parent == run_id
    ]
    return max(jobs, key=lambda r: r.id) if jobs else None
