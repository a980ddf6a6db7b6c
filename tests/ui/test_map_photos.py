"""The Embedding map's thumbnail route (ui.map_photos, core.embeddings.photos), served as the dashboard does.

Requests go through a Starlette app holding exactly the routes app.py's st.App gets
(`map_photos.routes()`), driven over ASGI in this process (no httpx here). The run is a registry
record over a generated folder of Oxford-named photos, one solid colour per breed, so a photo's
class shows in its pixels; no model is trained. Catches: the photo of another point, split or image
than the row's; anything served for a job that is not a finished map, a row it does not have, data
outside the data roots or changed since the map; thumbnails the browser cannot keep; TensorFlow
imported to serve one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from starlette.applications import Starlette

from core.config import DataConfig
from core.embeddings.maps import read_map
from core.embeddings.photos import THUMBNAIL_SIDE
from core.runs.records import LABEL_ISSUES
from core.runs.store import RunStore
from core.tables.dataset import forget_source_slots
from tests.conftest import PET_BREEDS, REPO
from tests.views.test_embedding import map_job
from ui import map_photos


@pytest.fixture
def photos_folder(pets, tmp_path) -> Path:
    """A private copy of the `pets` class folders (a test may change it)."""
    return Path(shutil.copytree(pets, tmp_path / "pets"))


@pytest.fixture
def maps(workspace, photos_folder) -> tuple[RunStore, int, int]:
    """(registry, job of a finished train map, job of a finished test map) of run 1 on the photos."""
    store = RunStore(workspace)
    data = dataclasses.asdict(DataConfig(source="folder", path=str(photos_folder)))
    assert store.create("head", {"data": data}, status="done") == 1
    return store, map_job(store, "train"), map_job(store, "test")


def get(path: str) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of a GET of `path` from a server with the map photo routes."""
    app = Starlette(routes=map_photos.routes())
    route, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": route,
        "raw_path": route.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", b"localhost")],
        "server": ("localhost", 80),
        "client": ("127.0.0.1", 5000),
    }
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    headers = {name.decode().lower(): value.decode() for name, value in sent[0]["headers"]}
    return sent[0]["status"], headers, b"".join(m.get("body", b"") for m in sent[1:])


def photo_url(job: int, row: int) -> str:
    return f"/petlab/map-photo/{job}/{row}?v=1"


def served_colour(job: int, row: int) -> np.ndarray:
    status, headers, body = get(photo_url(job, row))
    assert status == 200, body
    assert headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(body))
    assert image.format == "JPEG" and image.mode == "RGB"
    return np.asarray(image, np.float32).reshape(-1, 3).mean(axis=0)


def test_a_map_point_is_served_as_a_small_jpeg_of_its_own_image(maps):
    store, train, test = maps
    for job in (train, test):
        frame = read_map(store.paths(job).embedding)
        for row in range(0, len(frame), 3):  # every breed, in both splits' own orders
            colour = np.array(PET_BREEDS[frame["class_name"].iloc[row]])
            assert np.abs(served_colour(job, row) - colour).max() < 12, (job, row)

    _, headers, body = get(photo_url(train, 0))
    assert "max-age" in headers["cache-control"] and "no-store" not in headers["cache-control"]
    width, height = Image.open(io.BytesIO(body)).size
    assert width == height <= THUMBNAIL_SIDE  # the photos are 30-37 × 24 px: cropped square, not enlarged
    assert width == 24


def test_nothing_but_a_finished_maps_points_is_served(maps):
    store, train, _ = maps
    points = len(read_map(store.paths(train).embedding))
    issues = store.create(LABEL_ISSUES, {"data": store.get(1).config["data"]}, parent=1)
    store.paths(issues).create()
    store.paths(issues).embedding.write_bytes(store.paths(train).embedding.read_bytes())
    store.finish(issues, "done")
    running = store.create("embedding", {"data": store.get(1).config["data"]}, parent=1)
    store.paths(running).create()
    store.paths(running).embedding.write_bytes(store.paths(train).embedding.read_bytes())
    refused = [
        photo_url(train, points),  # a row past the map's end
        photo_url(1, 0),  # the training run itself
        photo_url(issues, 0),  # another kind of job, even with a map file
        photo_url(running, 0),  # a map not finished
        photo_url(999, 0),  # no such job
        f"/petlab/map-photo/{train}/-1",
        f"/petlab/map-photo/{train}/..%2F0",
        f"/petlab/map-photo/{train}",
    ]
    for url in refused:
        assert get(url)[0] == 404, url
    assert get(photo_url(train, points - 1))[0] == 200  # control: the last row is served


def test_no_photo_outside_the_data_roots_or_of_a_damaged_map(maps, monkeypatch):
    store, _, test = maps
    assert get(photo_url(test, 1))[0] == 200
    with monkeypatch.context() as patch:
        patch.setenv("PETLAB_DATA_ROOTS", str(store.workspace))  # the run's photos now lie outside
        assert get(photo_url(test, 1))[0] == 404
    assert get(photo_url(test, 1))[0] == 200
    store.paths(test).embedding.write_bytes(b"damaged")
    assert get(photo_url(test, 0))[0] == 404


def test_no_photo_of_another_image_when_the_data_changed_since_the_map(maps, photos_folder):
    store, train, _ = maps
    assert get(photo_url(train, 3))[0] == 200
    frame = read_map(store.paths(train).embedding)
    (photos_folder / frame["class_name"].iloc[3] / frame["item"].iloc[3]).unlink()
    forget_source_slots()  # as after a server restart: the folder is listed anew
    assert get(photo_url(train, 3))[0] == 404  # row 3's index now names another file


def test_serving_a_photo_imports_no_tensorflow(maps):
    _, train, _ = maps
    script = f"""
import json, sys
from ui import map_photos
body = map_photos.photo_jpeg({train}, 0)
print(json.dumps({{"jpeg": body[:2] == b"\\xff\\xd8",
                  "heavy": [m for m in ("tensorflow", "keras", "tensorflow_datasets") if m in sys.modules]}}))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"jpeg": True, "heavy": []}


def test_the_route_sits_below_the_servers_base_url_path():
    from streamlit import config

    config.set_option("server.baseUrlPath", "lab/")
    try:
        (route,) = map_photos.routes()
        assert route.path == "/lab/petlab/map-photo/{job_id:int}/{row:int}"
    finally:
        config.set_option("server.baseUrlPath", "")
    assert map_photos.routes()[0].path.startswith("/petlab/map-photo/")
