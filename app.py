"""PetLab dashboard: `streamlit run app.py`.

The router and the sidebar. The sidebar is drawn here, once per rerun and
before the page, so its settings hold on every page; pages read them through
`ui.state`. Every default comes from core.config.
"""

from __future__ import annotations

import os

# Before anything imports TensorFlow: quiet C++ logs, and on a GPU let this server and a
# training process share memory instead of this one taking it all.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")

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
from core.errors import PetLabError
from ui import state


@st.cache_resource(show_spinner=False)
def device_name() -> str:
    """The device the next run will use (asks TensorFlow once per server)."""
    from core.training.device import describe_device

    return describe_device()


def data_settings() -> None:
    st.subheader("Data")
    state.take_pending_data()  # e.g. the folder a zip was just imported into
    source = st.selectbox(
        "Dataset source", cfg.SOURCES, index=cfg.SOURCES.index(cfg.DATA.source),
        format_func=SOURCE_LABELS.get, key=state.SOURCE,
    )  # fmt: skip
    label = "TFDS data folder (optional)" if source == "tfds" else "Dataset folder"
    st.text_input(label, value=cfg.DATA.path or "", key=state.PATH, help=SOURCE_PATH_HELP[source])
    try:
        state.check_data_path()  # a shared dashboard reads only inside its data roots
    except PetLabError as exc:
        state.show_error(exc)


def training_settings() -> None:
    t = cfg.TRAIN
    st.subheader("Head training")
    names = list(BACKBONES)
    st.selectbox(
        "Backbone", names, index=names.index(get_backbone(t.backbone).name),
        format_func=lambda n: BACKBONES[n].label, key=state.BACKBONE,
    )  # fmt: skip
    weights = list(dict.fromkeys([*WEIGHT_CHOICES, t.weights]))
    st.selectbox(
        "Starting weights", weights, index=weights.index(t.weights),
        format_func=lambda w: WEIGHT_CHOICES.get(w, w), key=state.WEIGHTS,
    )  # fmt: skip
    default_size = default_image_size(t.backbone, t.image_size)
    st.number_input("Image size (px)", 32, 1024, default_size, step=16, key=state.IMAGE_SIZE)
    st.number_input("Epochs", 1, 1000, t.epochs, key=state.EPOCHS)
    st.select_slider("Learning rate", LR_CHOICES, value=t.lr, format_func=lambda v: f"{v:g}", key=state.LR)
    st.number_input("Batch size", 1, 4096, t.batch_size, key=state.BATCH_SIZE)
    st.number_input(
        "Early-stopping patience", 0, 1000, t.patience, key=state.PATIENCE,
        help="Stop after this many epochs without a better validation loss; 0 turns it off.",
    )  # fmt: skip
    st.caption(f"Augmentation: `{state.augment_spec()}` (change it on the Augmentation page)")


def finetune_settings() -> None:
    f = cfg.FINETUNE
    st.subheader("Fine-tuning")
    st.number_input("Fine-tuning epochs", 1, 1000, f.epochs, key=state.FT_EPOCHS)
    st.select_slider(
        "Fine-tuning learning rate", LR_CHOICES, value=f.lr, format_func=lambda v: f"{v:g}", key=state.FT_LR
    )
    all_layers, layers = unfreeze_choice(f.unfreeze)
    mode = st.radio(
        "Backbone layers to unfreeze", ["all", "top"], index=0 if all_layers else 1, horizontal=True,
        format_func={"all": "All", "top": "Top N"}.get, key=state.FT_UNFREEZE,
    )  # fmt: skip
    st.number_input(
        "N (layers from the top)",
        1,
        10_000,
        layers or TOP_LAYERS_SUGGESTION,
        key=state.FT_LAYERS,
        disabled=mode == "all",
    )


st.set_page_config(page_title="PetLab", page_icon="🐾", layout="wide")
st.session_state.setdefault(state.AUGMENT, cfg.TRAIN.augment)

pages = [
    st.Page("views/dataset.py", title="Dataset", icon=":material/photo_library:", default=True),
    st.Page("views/augmentation.py", title="Augmentation", icon=":material/auto_fix_high:"),
    st.Page("views/training.py", title="Training", icon=":material/model_training:"),
    st.Page("views/evaluation.py", title="Evaluation", icon=":material/analytics:"),
    st.Page("views/predict.py", title="Predict", icon=":material/search:"),
]
page = st.navigation(pages)

with st.sidebar:
    data_settings()
    training_settings()
    finetune_settings()
    st.divider()
    st.caption(f"Next run trains on: **{device_name()}**")
    st.caption(f"Workspace: `{state.workspace().name}`")  # the name only: visitors never see server paths

page.run()
