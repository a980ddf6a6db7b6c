"""A training run's report: one self-contained HTML file that opens offline in a browser, with no server.

It gathers what the run left: its record and per-epoch history (the registry), its evaluation
(`RunPaths.evaluation`), the data source's counts, and its most confident mistakes from the
decoded-image cache (core.tables.evaluation.read_test_split, as the Evaluation page's gallery does),
and fills the template run_report.html with the sections of core.reports.sections. plotly.js is
inlined once in the page's head; thumbnails are base64 JPEG data URIs. No TensorFlow.
"""

from __future__ import annotations

import base64
import io
import time
from html import escape
from pathlib import Path
from string import Template

import numpy as np
from PIL import Image
from plotly.offline import get_plotlyjs

from core import __version__
from core.errors import BadInputError, PetLabError
from core.reports import sections
from core.runs.records import RunRecord
from core.runs.store import RunStore
from core.tables.dataset import SourceSlot, thumbnail
from core.tables.evaluation import (
    has_samples,
    load_evaluation,
    matches_test_split,
    misclassified,
    mistake_caption,
    read_test_split,
    run_label,
)
from core.tables.runs import history_frame
from core.workspace import atomic_write_text

TEMPLATE = Template(Path(__file__).with_name("run_report.html").read_text(encoding="utf-8"))
MISTAKES_SHOWN = 12
THUMBNAIL_SIDE = 160
NO_SAMPLES = "This evaluation does not list its test images; evaluate the run again to see its mistakes."
NO_MISTAKES = "No test image was misclassified."
UNREADABLE = "The test images cannot be read, so the mistakes are not shown: {reason}"
CHANGED = "The test images have changed since this evaluation; evaluate the run again to see its mistakes."


def jpeg_data_uri(image: np.ndarray) -> str:
    """An HxWx3 uint8 image as a `data:image/jpeg;base64,…` URI, for an <img> that needs no file."""
    buffer = io.BytesIO()
    Image.fromarray(image).convert("RGB").save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def data_description(workspace: Path, record: RunRecord) -> tuple[dict | None, str | None]:
    """(DataSource.describe() of the run's data, None), or (None, why not); never downloads."""
    try:
        return SourceSlot(record.data, Path(workspace)).open(download=False).describe(), None
    except (PetLabError, OSError) as exc:
        return None, str(exc)


def mistake_thumbnails(
    workspace: Path, record: RunRecord, report: dict
) -> tuple[list[tuple[str, str]], str | None]:
    """([(caption, data URI)] of the most confident mistakes, None), or ([], why none are shown)."""
    if not has_samples(report):
        return [], NO_SAMPLES
    indices = misclassified(report, limit=MISTAKES_SHOWN)
    if not indices:
        return [], NO_MISTAKES
    try:
        images, labels = read_test_split(Path(workspace), record.data, record.train.image_size)
    except (PetLabError, OSError) as exc:
        return [], UNREADABLE.format(reason=exc)
    if not matches_test_split(report, labels):
        return [], CHANGED
    return [
        (mistake_caption(report, i), jpeg_data_uri(thumbnail(np.asarray(images[i]), THUMBNAIL_SIDE)))
        for i in indices
    ], None


def training_record(store: RunStore, run_id: int) -> RunRecord:
    """The run to report on: NotFoundError for no such run, BadInputError for a job that trains no model."""
    record = store.get(run_id)
    if not record.trains:
        raise BadInputError(
            f"Run {run_id} is a {record.kind} job, which trains no model; ask for the report of a head or "
            "fine-tuning run."
        )
    return record


def run_report_html(store: RunStore, run_id: int) -> str:
    """The whole report of training run `run_id` as one HTML page."""
    record = training_record(store, run_id)
    report = load_evaluation(store.paths(run_id).evaluation)
    mistakes, why_none = mistake_thumbnails(store.workspace, record, report) if report else ([], None)
    written = time.strftime("%Y-%m-%d %H:%M", time.localtime())
    return TEMPLATE.substitute(
        title=escape(f"PetLab run {run_id}"),
        subtitle=escape(run_label(record)),
        plotlyjs=get_plotlyjs(),
        config=sections.config_section(record),
        data=sections.data_section(*data_description(store.workspace, record)),
        curves=sections.curves_section(history_frame(store, [run_id])),
        results=sections.results_section(run_id, report, mistakes, why_none),
        written=escape(f"Written {written} by PetLab {__version__}."),
    )


def write_run_report(store: RunStore, run_id: int, out: Path | None = None) -> Path:
    """Write the report of run `run_id` to `out` (default: `RunPaths.report` in the run's folder); its path.

    PetLabError (one sentence) when the file cannot be written.
    """
    html = run_report_html(store, run_id)
    path = Path(out) if out is not None else store.paths(run_id).report
    try:
        atomic_write_text(path, html)
    except OSError as exc:
        raise PetLabError(
            f"The report cannot be written to {path} ({exc.strerror or exc}); choose another file or free "
            "disk space."
        ) from None
    return path
