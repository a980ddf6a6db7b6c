"""PetLab dashboard: `streamlit run app.py`.

The router: the pages (views/) under st.navigation, in three menu sections, and the shared
sidebar (ui.sidebar), drawn on every rerun before the page so that its settings hold on every page.

Streamlit runs this file for every session's reruns (as `__main__`): `main()` draws. When the
server starts, `streamlit run` also imports it once, as a module, and serves the st.App it finds
(`app`); that app's lifespan imports what the pages need in the background (ui/warmup.py), so
the first page does not wait for pandas, plotly and PetLab's modules; its routes add the Embedding map's
hover thumbnails (ui/map_photos.py).
"""

from __future__ import annotations

import os

# Before anything imports TensorFlow: quiet C++ logs, and on a GPU let this server and a
# training process share memory instead of this one taking it all.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")

import streamlit as st

from ui import warmup

# (file, title, icon, menu section), in menu order.
PAGES = (
    ("views/dataset.py", "Dataset", ":material/photo_library:", "Data"),
    ("views/augmentation.py", "Augmentation", ":material/auto_fix_high:", "Data"),
    ("views/training.py", "Training", ":material/model_training:", "Model"),
    ("views/evaluation.py", "Evaluation", ":material/analytics:", "Model"),
    ("views/predict.py", "Predict", ":material/search:", "Model"),
    ("views/embedding.py", "Embedding map", ":material/scatter_plot:", "Know your data"),
    ("views/label_issues.py", "Label issues", ":material/rule:", "Know your data"),
)


def navigation() -> st.Page:
    """The page to run: the one chosen in the menu (the first one by default)."""
    sections: dict[str, list[st.Page]] = {}
    for n, (path, title, icon, section) in enumerate(PAGES):
        sections.setdefault(section, []).append(st.Page(path, title=title, icon=icon, default=n == 0))
    return st.navigation(sections)


def main() -> None:
    """One rerun: the sidebar, then the chosen page."""
    warmup.wait()  # only the first page can find the server-start imports still running
    from core import config as cfg
    from ui import engine, sidebar, state

    engine.keep_keras_session()
    st.set_page_config(page_title="PetLab", page_icon="🐾", layout="wide")
    st.session_state.setdefault(state.AUGMENT, cfg.TRAIN.augment)
    page = navigation()
    sidebar.draw()
    try:
        page.run()
    finally:  # also after a page's st.stop(): the TensorFlow side loads in the background once drawn
        engine.start()


if __name__ == "__main__":
    main()
else:
    from ui import map_photos

    app = st.App(__file__, lifespan=warmup.lifespan, routes=map_photos.routes())
