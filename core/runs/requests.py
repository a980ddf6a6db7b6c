"""Run requests: validate a head-training, fine-tuning or resume request and queue it.

No TensorFlow: the dashboard queues runs from here and a worker process
(core.training.worker) trains them.
"""

from __future__ import annotations

import json
from pathlib import Path

from core import config as cfg
from core.catalog.augmentations import parse_spec
from core.catalog.backbones import default_image_size, get_backbone
from core.errors import BadInputError
from core.runs.store import RunStore

BACKUP_DIR = "backup"  # in the run folder: keras/ (BackupAndRestore), early_stopping.json, best.npz


def backup_path(store: RunStore, run_id: int) -> Path:
    """The folder where a run's fit backs itself up each epoch (gone once the run ends normally)."""
    return store.runs_path / str(int(run_id)) / BACKUP_DIR


def resumable_epoch(store: RunStore, run_id: int) -> int:
    """How many epochs a run's backup holds (0: nothing to resume from)."""
    try:
        metadata = json.loads((backup_path(store, run_id) / "keras" / "training_metadata.json").read_text())
        return int(metadata["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


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


def queue_head_run(store: RunStore, data: cfg.DataConfig, train: cfg.TrainConfig) -> int:
    """Validate a head-training request and queue it; returns the run id."""
    backbone = get_backbone(train.backbone)
    if train.epochs < 1 or train.batch_size < 1 or train.lr <= 0:
        raise BadInputError("Epochs, batch size and learning rate must all be positive.")
    if data.source not in cfg.SOURCES:
        raise BadInputError(f"Unknown source {data.source!r}; choose one of: {', '.join(cfg.SOURCES)}.")
    parse_spec(train.augment)  # fails early on a bad spec
    image_size = default_image_size(backbone.name, train.image_size)
    if image_size < 32:
        raise BadInputError(f"Image size {image_size} is too small; use at least 32 px.")
    train_values = cfg.to_dict(train) | {"backbone": backbone.name, "image_size": image_size}
    return store.create("head", {"data": cfg.to_dict(data), "train": train_values})


def queue_finetune_run(store: RunStore, parent_id: int, finetune: cfg.FinetuneConfig) -> int:
    """Validate a fine-tuning request on a finished run and queue it; returns the run id."""
    parent = store.get(parent_id)
    if parent.status != "done":
        raise BadInputError(f"Run {parent_id} is {parent.status}; fine-tune from a finished (done) run.")
    if parent.broken:
        raise BadInputError(parent.broken)
    if not (store.run_dir(parent_id) / "model.keras").is_file():
        raise BadInputError(f"Run {parent_id} has no saved model; train a new head run first.")
    if finetune.epochs < 1 or finetune.lr <= 0:
        raise BadInputError("Fine-tuning epochs and learning rate must be positive.")
    cfg.parse_unfreeze(finetune.unfreeze)
    config = {
        "data": parent.config["data"],
        "train": parent.config["train"],
        "finetune": cfg.to_dict(finetune),
    }
    return store.create("finetune", config, parent=parent_id)
