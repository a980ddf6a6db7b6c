"""Session-state keys of the shared settings, the configs they make, and cached resources.

The sidebar (ui.sidebar) owns the widgets; every page reads the settings through
these functions, so a value chosen once holds on every page. Defaults come
from core.config. A typed dataset path counts only inside the data roots
(core.data.roots), and every error shown goes through `redact`, so a visitor of a
shared dashboard can neither browse nor learn the server's disk (ui.errors shows them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from core import config as cfg
from core.catalog.backbones import default_image_size
from core.catalog.choices import LR_CHOICES, TOP_LAYERS_SUGGESTION, unfreeze_choice
from core.catalog.experiments import nearest_on_log_scale
from core.data.base import DataSource
from core.data.roots import data_roots as _data_roots
from core.data.roots import redact_paths, resolve_within_roots
from core.errors import PetLabError
from core.runs.store import RunStore
from core.tables import dataset as dataset_tables
from core.tables.dataset import SourceSlot
from core.workspace import resolve_workspace

# Widget keys (also the handles a browser test or AppTest uses).
SOURCE = "data_source"
PATH = "data_path"
BACKBONE = "backbone"
WEIGHTS = "weights"
IMAGE_SIZE = "image_size"
EPOCHS = "epochs"
LR = "lr"
BATCH_SIZE = "batch_size"
PATIENCE = "patience"
FT_EPOCHS = "ft_epochs"
FT_LR = "ft_lr"
FT_UNFREEZE = "ft_unfreeze"  # "all" or "top"
FT_LAYERS = "ft_layers"
# Not a widget: the Augmentation page writes it, head training reads it.
AUGMENT = "augment_spec"
# Not a widget: (source, path) for the sidebar to take over on the next rerun (see use_folder).
PENDING_DATA = "pending_data"

# Upload limits in MB; the server's own cap (.streamlit/config.toml maxUploadSize) is the zip's.
PHOTO_UPLOAD_MB = 20
ZIP_UPLOAD_MB = 500


def workspace() -> Path:
    """The workspace folder ($PETLAB_WORKSPACE or ./workspace)."""
    return resolve_workspace()


@st.cache_resource(show_spinner=False)
def _store(path: str) -> RunStore:
    return RunStore(Path(path))


def store() -> RunStore:
    """The run registry of the workspace, one per server process."""
    return _store(str(workspace()))


def source_slot(data: cfg.DataConfig | None = None) -> SourceSlot:
    """The shared, lazily opened data source of `data` (default: the sidebar's), in this workspace.

    Raises BadInputError when the sidebar's path lies outside the data roots.
    """
    check_data_path()
    return dataset_tables.source_slot(data or data_config(), workspace())


@st.cache_data(max_entries=64, show_spinner=False)
def load_example(_source: DataSource, key: tuple, split: str, index: int) -> tuple[np.ndarray, int, str]:
    """(full-size image, label, file name) of one example of an opened source; `key` names the source
    for the cache (the source itself is not hashed)."""
    image, label = _source.load(split, index)
    return image, label, _source.item_name(split, index)


def forget_source() -> None:
    """Drop the opened sources and the example images read from them, so the next use reads the
    folder (or dataset) again (the sources not shown now are opened again when next used)."""
    dataset_tables.forget_source_slots()
    load_example.clear()  # keyed by the source's settings, not its contents: all of them may be stale


def augment_spec() -> str:
    """The augmentation spec chosen on the Augmentation page (default: core.config)."""
    return st.session_state.get(AUGMENT, cfg.TRAIN.augment)


def data_roots() -> list[Path]:
    """The folders a visitor may read: workspace, start folder, $PETLAB_DATA_ROOTS."""
    return _data_roots(workspace())


def check_data_path() -> Path | None:
    """The sidebar's path resolved inside the data roots (None if empty); BadInputError outside them."""
    text = (st.session_state.get(PATH) or "").strip()
    return resolve_within_roots(text, data_roots()) if text else None


def data_config() -> cfg.DataConfig:
    """The data settings of the sidebar; never a path outside the data roots.

    A refused path is left out (check_data_path and source_slot say why), so nothing
    built from these settings can read it.
    """
    source = st.session_state.get(SOURCE, cfg.DATA.source)
    try:
        path = check_data_path()
    except PetLabError:
        path = None
    return cfg.DataConfig(source=source, path=str(path) if path else None)


def use_folder(path: Path) -> None:
    """Make the sidebar switch to the folder source at `path` (applied by take_pending_data)."""
    st.session_state[PENDING_DATA] = ("folder", str(path))


def take_pending_data() -> None:
    """Apply a use_folder request; the sidebar calls it before drawing its data widgets."""
    pending = st.session_state.pop(PENDING_DATA, None)
    if pending:
        st.session_state[SOURCE], st.session_state[PATH] = pending


def train_config() -> cfg.TrainConfig:
    """The head-training settings of the sidebar plus the chosen augmentation."""
    t, s = cfg.TRAIN, st.session_state
    return cfg.TrainConfig(
        backbone=s.get(BACKBONE, t.backbone),
        weights=s.get(WEIGHTS, t.weights),
        image_size=default_image_size(s.get(BACKBONE, t.backbone), s.get(IMAGE_SIZE) or t.image_size),
        epochs=int(s.get(EPOCHS, t.epochs)),
        lr=float(s.get(LR, t.lr)),
        batch_size=int(s.get(BATCH_SIZE, t.batch_size)),
        patience=int(s.get(PATIENCE, t.patience)),
        augment=augment_spec(),
    )


def finetune_config() -> cfg.FinetuneConfig:
    """The fine-tuning settings of the sidebar."""
    f, s = cfg.FINETUNE, st.session_state
    all_layers, default_layers = unfreeze_choice(f.unfreeze)
    mode = s.get(FT_UNFREEZE, "all" if all_layers else "top")
    unfreeze = "all" if mode == "all" else str(int(s.get(FT_LAYERS, default_layers or TOP_LAYERS_SUGGESTION)))
    return cfg.FinetuneConfig(
        epochs=int(s.get(FT_EPOCHS, f.epochs)), lr=float(s.get(FT_LR, f.lr)), unfreeze=unfreeze
    )


def redact(message: str) -> str:
    """`message` without the server's absolute paths (core.data.roots.redact_paths)."""
    return redact_paths(message, data_roots())


def use_lr(value: float) -> None:
    """Put a learning rate in the sidebar's widget: the nearest it offers (a callback: before it is drawn)."""
    st.session_state[LR] = nearest_on_log_scale(value, LR_CHOICES)
