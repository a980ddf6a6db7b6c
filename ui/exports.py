"""The Evaluation page's Export tab: export buttons for every format, and downloads of what is exported.

Exported files live in the run's folder (core.runs.layout.RunPaths.exports); exporting loads
TensorFlow (core.inference.export), so that module is imported only when a button is clicked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from core.runs.layout import RunPaths
from core.runs.records import RunRecord
from core.runs.store import RunStore
from core.tables.evaluation import format_bytes, size_of, zip_folder
from ui import errors, state
from ui.widgets import progress_bar


@dataclass(frozen=True)
class ExportKind:
    """One export button: its widget key, label, core format, quantization, download suffix and help."""

    key: str
    label: str
    fmt: str
    quantize: bool
    suffix: str
    help: str


EXPORTS = (
    ExportKind(
        "keras", "Keras", "keras", False, ".keras", "the Keras model, for Python and further training"
    ),
    ExportKind(
        "savedmodel",
        "SavedModel",
        "savedmodel",
        False,
        "-savedmodel.zip",
        "TensorFlow Serving (zipped folder)",
    ),
    ExportKind("tflite", "TFLite", "tflite", False, ".tflite", "TensorFlow Lite / LiteRT, float32"),
    ExportKind(
        "tflite_quantized", "TFLite quantized", "tflite", True, "-quantized.tflite", "int8 weights, ~¼ size"
    ),
)


def export_section(store: RunStore, record: RunRecord) -> None:
    """Explain where exports go, offer one button per format, then the downloads and TensorBoard."""
    paths = store.paths(record.id)
    st.caption(
        f"Files go to `runs/{record.id}/{paths.exports.name}/` in the workspace (exporting again "
        "replaces them), with labels.txt (the class names, one a line, in output order). Every model "
        f"takes raw 0-255 RGB images at {record.train.image_size} px."
    )
    clicked = export_buttons()
    if clicked:
        export(store, record.id, clicked)
    downloads(record.id, paths)
    st.markdown("**TensorBoard**: the training curves of every run, with")
    st.code(f"tensorboard --logdir {state.redact(str(store.runs_path))}", language="bash")


def export_buttons() -> ExportKind | None:
    """A row of export buttons; the one clicked, if any."""
    clicked = None
    for column, kind in zip(st.columns(len(EXPORTS)), EXPORTS, strict=True):
        if column.button(f"Export {kind.label}", key=f"export_{kind.key}", help=kind.help, width="stretch"):
            clicked = kind
    return clicked


def export(store: RunStore, run_id: int, kind: ExportKind) -> None:
    """Export the run's model in one format, with a progress bar."""
    from core.inference.export import export_run  # imports TensorFlow

    with errors.shown(), progress_bar() as bar:
        export_run(store, run_id, kind.fmt, quantize=kind.quantize, progress=bar)


def downloads(run_id: int, paths: RunPaths) -> None:
    """A download button for each exported model, and one for labels.txt."""
    ready = [(kind, paths.export_model(kind.fmt, kind.quantize)) for kind in EXPORTS]
    ready = [(kind, path) for kind, path in ready if path.exists()]
    if not ready:
        st.caption("Nothing exported yet.")
        return
    columns = st.columns(len(ready) + 1)
    for column, (kind, path) in zip(columns, ready, strict=False):
        with column:
            model_download(run_id, kind, path)
    if paths.export_labels.is_file():
        with columns[-1]:
            labels_download(run_id, paths.export_labels)


def model_download(run_id: int, kind: ExportKind, path: Path) -> None:
    """Download one exported model; a SavedModel folder goes as a zip, built only when clicked."""
    folder = path.is_dir()
    st.download_button(
        f"{kind.label} ({format_bytes(size_of(path))})",
        (lambda: zip_folder(path)) if folder else path.read_bytes,
        file_name=f"petlab-run{run_id}{kind.suffix}",
        mime="application/zip" if folder else "application/octet-stream",
        key=f"download_{kind.key}",
        icon=":material/download:",
        on_click="ignore",
        width="stretch",
    )


def labels_download(run_id: int, path: Path) -> None:
    st.download_button(
        "labels.txt",
        path.read_text(encoding="utf-8"),
        file_name=f"petlab-run{run_id}-labels.txt",
        mime="text/plain",
        key="download_labels",
        icon=":material/download:",
        on_click="ignore",
        width="stretch",
    )
