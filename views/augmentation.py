"""Augmentation page: choose the augmentation layers training uses, and see what they do.

The layer controls draw without TensorFlow; the preview grid runs the Keras layers themselves
(core.model.augmentation), so it waits in its own area for the model engine (ui.engine), which
loads in the background, and appears when it is ready.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from core import config as cfg
from core.catalog.augmentations import AUGMENTATIONS, FLIP_MODES, format_spec, parse_spec
from core.data.images import IMAGE_EXTENSIONS, decode_image, resize_image
from core.tables.dataset import thumbnail
from ui import engine, errors, state
from ui.widgets import progress_bar

VERSIONS = 8
GRID_COLUMNS = 3
NO_DATASET_HINT = "Open the dataset on the Dataset page, or preview on your own photo."
IMAGE_MODES = {"dataset": "A random training image", "upload": "My own photo"}


def enabled_key(name: str) -> str:
    return f"aug_{name}"


def value_key(name: str) -> str:
    return f"aug_{name}_value"


def sync_spec() -> None:
    """Write the spec the widgets describe to the shared setting training reads."""
    chosen = {
        name: st.session_state[value_key(name)]
        for name in AUGMENTATIONS
        if st.session_state.get(enabled_key(name))
    }
    st.session_state[state.AUGMENT] = format_spec(chosen)


def load_spec(spec: str) -> None:
    """Set the widgets from a spec (the current one on first visit, or the reference on reset)."""
    parsed = parse_spec(spec)
    for name, kind in AUGMENTATIONS.items():
        st.session_state[enabled_key(name)] = name in parsed
        st.session_state[value_key(name)] = parsed.get(name, kind.default)
    st.session_state[state.AUGMENT] = format_spec(parsed)


def layer_controls() -> None:
    for name, kind in AUGMENTATIONS.items():
        left, right = st.columns([1, 2], vertical_alignment="center")
        on = left.checkbox(
            name.capitalize(),
            key=enabled_key(name),
            help=kind.help,
            on_change=sync_spec,
            persist_state="session",
        )
        if name == "flip":
            right.selectbox(
                "Flip mode",
                FLIP_MODES,
                key=value_key(name),
                disabled=not on,
                on_change=sync_spec,
                label_visibility="collapsed",
                persist_state="session",
            )
        else:
            right.slider(
                f"{name.capitalize()} amount",
                float(kind.minimum),
                float(kind.maximum),
                step=0.01,
                key=value_key(name),
                disabled=not on,
                on_change=sync_spec,
                label_visibility="collapsed",
                persist_state="session",
            )


def training_image() -> tuple[np.ndarray, str] | None:
    """A random training image of the sidebar's dataset, or an uploaded one."""
    mode = st.radio(
        "Preview on",
        list(IMAGE_MODES),
        horizontal=True,
        key="aug_image_mode",
        persist_state="session",
        format_func=IMAGE_MODES.get,
    )
    return uploaded_image() if mode == "upload" else dataset_image()


def uploaded_image() -> tuple[np.ndarray, str] | None:
    upload = st.file_uploader(
        "Photo",
        type=[e.lstrip(".") for e in IMAGE_EXTENSIONS],
        key="aug_upload",
        max_upload_size=state.PHOTO_UPLOAD_MB,
    )
    if upload is None:
        return None
    with errors.shown():
        return decode_image(upload.getvalue(), upload.name), upload.name
    return None


def dataset_image() -> tuple[np.ndarray, str] | None:
    """A random image of the sidebar dataset's training split ("Another image" draws a new one)."""
    source = None
    with errors.shown(hint=NO_DATASET_HINT), progress_bar() as bar:
        source = state.source_slot().open(progress=bar, download=False)
    if source is None:
        return None
    size = source.split_size("train")
    if size == 0:
        st.info(
            "This dataset's training split is empty; choose another dataset in the sidebar, "
            "or preview on your own photo."
        )
        return None
    if st.button("Another image", key="aug_another_image", icon=":material/shuffle:"):
        st.session_state["aug_image_seed"] = st.session_state.get("aug_image_seed", 0) + 1
    index = int(np.random.default_rng(st.session_state.get("aug_image_seed", 0)).integers(size))
    image, label = source.load("train", index)
    return image, f"{source.class_names[label]} · {source.item_name('train', index)}"


@st.cache_data(max_entries=16, show_spinner="Augmenting…")
def cached_preview(image: np.ndarray, spec: str, seed: int, size: int) -> list[np.ndarray]:
    from core.model.augmentation import preview_augmentations  # loaded by the engine (see wait_drawn)

    return preview_augmentations(image, spec, VERSIONS, seed, size)


def preview_grid(image: np.ndarray, caption: str) -> None:
    """The image at training size, then VERSIONS augmented versions of it ("New random versions" redraws)."""
    if st.button("New random versions", key="aug_reshuffle", icon=":material/casino:"):
        st.session_state["aug_seed"] = st.session_state.get("aug_seed", 0) + 1
    size = state.train_config().image_size
    with errors.shown(stop=True):
        engine.wait_drawn(engine.start())
        versions = cached_preview(image, state.augment_spec(), st.session_state.get("aug_seed", 0), size)
    grid = st.columns(GRID_COLUMNS)
    grid[0].image(thumbnail(resize_image(image, size), 240), caption=f"original: {caption}")
    for n, version in enumerate(versions, start=1):
        grid[n % GRID_COLUMNS].image(thumbnail(version, 240), caption=f"version {n}")


st.title("Augmentation")
st.caption(
    "Random changes applied to training images only, each epoch anew; validation and test images are "
    "never augmented. What you choose here is what the next head training uses."
)
if enabled_key("flip") not in st.session_state:
    load_spec(state.augment_spec())

controls, preview = st.columns([2, 3], gap="large")
with controls:
    layer_controls()
    sync_spec()
    st.markdown(f"Training will use: `{state.augment_spec()}`")
    st.button(
        "Reset to the reference",
        key="aug_reset",
        on_click=load_spec,
        args=(cfg.TRAIN.augment,),
        help=f"The reference recipe: {cfg.TRAIN.augment}",
    )

with preview:
    picked = training_image()
    if picked is not None:
        preview_grid(*picked)

engine.start()  # the preview's layers: loading begins once the page is drawn, if it has not yet
