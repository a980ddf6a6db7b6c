"""The map's photos (ui.embedding.selection): a clicked point's photo, a selection's gallery.

AppTest cannot click a plotly chart, so these run the panel the chart's selection feeds
(with the rows core.embeddings.maps.selected_rows makes of it) on a real run's images, decoded
on demand from its data source. Catches: the photo of another image than the point's, a gallery
that ignores the selection or its order, no cap on the gallery, and photos shown after the
data changed under the map.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.data.sources import open_source
from core.runs.store import RunStore
from tests.apptest import TIMEOUT, texts
from ui.embedding import CHANGED, GALLERY_CAP, GALLERY_COLUMNS


def selection_panel(workspace: str, rows: list[int], rename: bool) -> None:
    """A page that shows run 1's train map selection `rows` (file names changed when `rename`)."""
    import numpy as np

    from core.data.sources import open_source
    from core.embeddings.maps import map_frame
    from core.runs.store import RunStore
    from ui import embedding

    record = RunStore(workspace).get(1)
    source = open_source("folder", record.data.path, workspace=workspace)
    labels = source.labels("train")
    names = [source.item_name("train", i) + (".old" if rename else "") for i in range(len(labels))]
    coords = np.zeros((len(labels), 2))
    frame = map_frame(
        coords, labels, np.arange(len(labels)), np.array(names), np.array(source.class_names), "train"
    )
    embedding.selection(record, frame, rows)


def run_panel(workspace, rows, rename=False) -> AppTest:
    at = AppTest.from_function(
        selection_panel, args=(str(workspace), rows, rename), default_timeout=TIMEOUT
    ).run()
    assert not at.exception, at.exception
    return at


def captions(at) -> list[str]:
    return [image.proto.imgs[0].caption for image in at.image]


def train_examples(workspace):
    record = RunStore(workspace).get(1)
    source = open_source("folder", record.data.path, workspace=workspace)
    return source, source.class_names, source.labels("train")


def test_a_clicked_point_shows_its_photo_large(trained_copy):
    source, classes, labels = train_examples(trained_copy)
    at = run_panel(trained_copy, [7])
    name = source.item_name("train", 7)
    assert captions(at) == [f"{classes[labels[7]]} · {name}"]
    width, height = Image.open(next(source.root.rglob(name))).size
    assert any(f"{width} × {height} px" in text and name in text for text in texts(at.markdown))


def test_a_selection_shows_a_gallery_of_its_first_images(trained_copy):
    source, classes, labels = train_examples(trained_copy)
    rows = list(range(len(labels)))[::-1]  # the selection's order, not the split's
    assert len(rows) > GALLERY_CAP
    at = run_panel(trained_copy, rows)
    assert at.subheader[0].value == f"{len(rows)} selected images"
    expected = [f"{classes[labels[r]]} · {source.item_name('train', r)}" for r in rows[:GALLERY_CAP]]
    # Row by row on the page: the grid's columns hold images c, c + 6, c + 12, …
    columns = GALLERY_COLUMNS
    assert captions(at) == [expected[i] for c in range(columns) for i in range(c, len(expected), columns)]
    counts = np.bincount(labels, minlength=len(classes))
    assert all(f"{classes[c]} {counts[c]}" in at.caption[0].value for c in range(len(classes)) if counts[c])


def test_no_photo_is_shown_when_the_data_changed_since_the_map(trained_copy):
    at = run_panel(trained_copy, [3], rename=True)
    assert not at.image and texts(at.warning) == [CHANGED]
    at = run_panel(trained_copy, [1, 2, 3], rename=True)
    assert not at.image and texts(at.warning) == [CHANGED]
