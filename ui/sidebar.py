"""The shared sidebar: data source, training and fine-tuning settings, and the device the next run uses.

While the worker downloads and prepares a dataset, the sidebar shows its progress on every
page (ui.data_job).

app.py draws it once per rerun, before the page, so a setting holds on every page; pages read
the values through `ui.state` (whose keys the widgets use). The choice lists come from
core.catalog.choices, every default from core.config. The server never imports TensorFlow for
the sidebar: the device name is what the workspace's last training process (or a background
probe, started once) noted.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core import config as cfg
from core.catalog.backbones import BACKBONES, default_image_size, get_backbone
from core.catalog.choices import (
    LR_CHOICES,
    SOURCE_LABELS,
    SOURCE_PATH_HELP,
    TOP_LAYERS_SUGGESTION,
    WEIGHT_CHOICES,
    unfreeze_choice,
)
from core.runs import worker_process as jobs
from ui import data_job, errors, state

PATIENCE_HELP = "Stop after this many epochs without a better validation loss; 0 turns it off."
UNFREEZE_MODES = {"all": "All", "top": "Top N"}


@st.cache_resource(show_spinner=False)
def probe_device_once(workspace: str) -> None:
    """Start one background probe of the device per server and workspace (see core.runs.worker_process)."""
    jobs.probe_device(Path(workspace))


def device_name() -> str:
    """The device the last training process of this workspace found; asked once in the background."""
    noted = jobs.recorded_device(state.workspace())
    if noted is None:
        probe_device_once(str(state.workspace()))
    return noted or "checking…"


def format_lr(value: float) -> str:
    return f"{value:g}"


def data_settings() -> None:
    """Dataset source and folder; a folder outside the data roots is refused with a message."""
    st.subheader("Data")
    state.take_pending_data()  # e.g. the folder a zip was just imported into
    source = st.selectbox(
        "Dataset source",
        cfg.SOURCES,
        index=cfg.SOURCES.index(cfg.DATA.source),
        format_func=SOURCE_LABELS.get,
        key=state.SOURCE,
    )
    label = "TFDS data folder (optional)" if source == "tfds" else "Dataset folder"
    st.text_input(label, value=cfg.DATA.path or "", key=state.PATH, help=SOURCE_PATH_HELP[source])
    with errors.shown():
        state.check_data_path()  # a shared dashboard reads only inside its data roots


def model_settings() -> None:
    """Backbone, starting weights and image size of head training."""
    t = cfg.TRAIN
    st.subheader("Head training")
    names = list(BACKBONES)
    st.selectbox(
        "Backbone",
        names,
        index=names.index(get_backbone(t.backbone).name),
        format_func=lambda name: BACKBONES[name].label,
        key=state.BACKBONE,
    )
    weights = list(dict.fromkeys([*WEIGHT_CHOICES, t.weights]))
    st.selectbox(
        "Starting weights",
        weights,
        index=weights.index(t.weights),
        format_func=lambda w: WEIGHT_CHOICES.get(w, w),
        key=state.WEIGHTS,
    )
    default_size = default_image_size(t.backbone, t.image_size)
    st.number_input("Image size (px)", 32, 1024, default_size, step=16, key=state.IMAGE_SIZE)


def schedule_settings() -> None:
    """Epochs, learning rate, batch size and early stopping of head training, and its augmentation."""
    t = cfg.TRAIN
    st.number_input("Epochs", 1, 1000, t.epochs, key=state.EPOCHS)
    st.select_slider("Learning rate", LR_CHOICES, value=t.lr, format_func=format_lr, key=state.LR)
    st.number_input("Batch size", 1, 4096, t.batch_size, key=state.BATCH_SIZE)
    st.number_input("Early-stopping patience", 0, 1000, t.patience, key=state.PATIENCE, help=PATIENCE_HELP)
    st.caption(f"Augmentation: `{state.augment_spec()}` (change it on the Augmentation page)")


def finetune_settings() -> None:
    """Epochs, learning rate and unfrozen layers of fine-tuning."""
    f = cfg.FINETUNE
    st.subheader("Fine-tuning")
    st.number_input("Fine-tuning epochs", 1, 1000, f.epochs, key=state.FT_EPOCHS)
    st.select_slider(
        "Fine-tuning learning rate", LR_CHOICES, value=f.lr, format_func=format_lr, key=state.FT_LR
    )
    all_layers, layers = unfreeze_choice(f.unfreeze)
    mode = st.radio(
        "Backbone layers to unfreeze",
        list(UNFREEZE_MODES),
        index=0 if all_layers else 1,
        horizontal=True,
        format_func=UNFREEZE_MODES.get,
        key=state.FT_UNFREEZE,
    )
    default_layers = layers or TOP_LAYERS_SUGGESTION
    st.number_input(
        "N (layers from the top)", 1, 10_000, default_layers, key=state.FT_LAYERS, disabled=mode == "all"
    )


def machine_info() -> None:
    """The device the next run trains on, and the workspace's name (never its path: visitors see this)."""
    st.divider()
    st.caption(f"Next run trains on: **{device_name()}**")
    st.caption(f"Workspace: `{state.workspace().name}`")


def draw() -> None:
    """The whole sidebar, in order."""
    with st.sidebar:
        data_job.sidebar_note()  # a dataset being downloaded, whatever the page
        data_settings()
        model_settings()
        schedule_settings()
        finetune_settings()
        machine_info()
