"""Security: the dashboard's data roots, path redaction, and the server defaults.

A typed path must stay inside the data roots (`..` and symlinks resolved first);
messages shown in the browser carry no absolute server path; the default server
listens on localhost. Safe model loading: tests/core/data/test_safe_loading.py.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest

from core.data import open_source
from core.data.roots import DATA_ROOTS_ENV, data_roots, redact_paths, resolve_within_roots
from core.errors import BadInputError, PetLabError
from tests.conftest import REPO

ROOT = REPO
# Anything that looks like an absolute POSIX path.
ABSOLUTE = re.compile(r"(?<![\w:/])/[\w.-]")


@pytest.fixture
def roots(tmp_path: Path) -> list[Path]:
    """One data root, `tmp_path/data`, beside a folder outside it."""
    (tmp_path / "data" / "pets").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    return [(tmp_path / "data").resolve()]


# -- data roots ------------------------------------------------------------------------------


def test_default_roots_are_the_workspace_and_the_start_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ROOTS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert data_roots(tmp_path / "ws") == [(tmp_path / "ws").resolve(), tmp_path.resolve()]


def test_more_roots_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(DATA_ROOTS_ENV, os.pathsep.join(["/srv/a", "", " /srv/b ", str(tmp_path)]))
    expected = [(tmp_path / "ws").resolve(), tmp_path.resolve(), Path("/srv/a"), Path("/srv/b")]
    assert data_roots(tmp_path / "ws") == expected


def test_paths_inside_a_root_are_resolved_and_accepted(roots):
    root = roots[0]
    assert resolve_within_roots(str(root / "pets"), roots) == root / "pets"
    assert resolve_within_roots(root / "pets" / ".." / "pets", roots) == root / "pets"
    assert resolve_within_roots(f"  {root}/not-yet-there  ", roots) == root / "not-yet-there"
    assert resolve_within_roots(root, roots) == root


@pytest.mark.parametrize("typed", ["/etc", "/", "{tmp}/outside", "{root}/../outside", "{root}-evil"])
def test_paths_outside_every_root_are_refused(roots, tmp_path, typed):
    typed = typed.format(tmp=tmp_path, root=roots[0])
    with pytest.raises(BadInputError, match="outside the data folders") as info:
        resolve_within_roots(typed, roots)
    assert str(tmp_path) not in str(info.value) and "etc" not in str(info.value)


def test_a_symlink_out_of_a_root_is_refused(roots, tmp_path):
    root = roots[0]
    (root / "link").symlink_to(tmp_path / "outside", target_is_directory=True)
    (root / "pets" / "escape").symlink_to("../../outside")
    for typed in (root / "link", root / "link" / "cat", root / "pets" / "escape"):
        with pytest.raises(BadInputError, match="outside the data folders"):
            resolve_within_roots(typed, roots)
    # A symlink that stays inside is fine.
    (root / "alias").symlink_to(root / "pets")
    assert resolve_within_roots(root / "alias", roots) == root / "pets"


def test_relative_paths_start_at_the_start_folder(roots, monkeypatch):
    monkeypatch.chdir(roots[0])
    assert resolve_within_roots("pets", roots) == roots[0] / "pets"
    assert resolve_within_roots("./pets/../pets", roots) == roots[0] / "pets"
    with pytest.raises(BadInputError):
        resolve_within_roots("../outside", roots)
    with pytest.raises(BadInputError):
        resolve_within_roots("   ", roots)


def test_home_is_expanded_before_the_check(roots, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "outside"))
    with pytest.raises(BadInputError):
        resolve_within_roots("~", roots)
    monkeypatch.setenv("HOME", str(roots[0]))
    assert resolve_within_roots("~/pets", roots) == roots[0] / "pets"


# -- redaction -------------------------------------------------------------------------------


def error_of(kind: str, path: Path, workspace: Path) -> str:
    with pytest.raises(PetLabError) as info:
        open_source(kind, path, workspace=workspace, download=False)
    return str(info.value)


def test_real_open_source_errors_lose_their_server_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "photo.jpg").write_bytes(b"x")
    (tmp_path / "no oxford").mkdir()
    messages = {
        "missing": error_of("folder", tmp_path / "missing", tmp_path),
        "empty": error_of("folder", tmp_path / "empty", tmp_path),
        "photo.jpg": error_of("folder", tmp_path / "photo.jpg", tmp_path),
        "no oxford": error_of("oxford-files", tmp_path / "no oxford", tmp_path),
        "tfds": error_of("tfds", None, tmp_path),
    }
    for name, message in messages.items():
        assert str(tmp_path) in message  # the command line names the full path
        for roots in ([], [tmp_path]):
            shown = redact_paths(message, roots)
            assert str(tmp_path) not in shown and not ABSOLUTE.search(shown), shown
            assert name in shown
            assert shown.split(";")[1:] == message.split(";")[1:]  # the advice is untouched
    assert redact_paths(messages["missing"], []).startswith("missing does not exist;")
    inside = redact_paths(messages["missing"], [tmp_path])
    assert inside.startswith(f"{tmp_path.name}/missing does not exist;")
    assert redact_paths(messages["no oxford"], [tmp_path]).startswith(
        f"No Oxford-IIIT Pet images were found in {tmp_path.name}/no oxford;"
    )


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        ("Cannot read /srv/petlab/data/x.jpg.", "Cannot read x.jpg."),
        ("Folder `/home/me/pets` (see /etc/) is empty", "Folder `pets` (see etc) is empty"),
        ("Cannot open C:\\Users\\me\\pets; try again", "Cannot open pets; try again"),
        ("No network: https://thor.robots.ox.ac.uk/~vgg/data/pets", None),
        ("Put cat/…, dog/… and images/ in it, 1/2 of them, and/or --path", None),
        ("Nothing at / here", None),
    ],
)
def test_redaction_keeps_base_names_urls_and_relative_paths(message, shown):
    assert redact_paths(message) == (shown or message)


def test_redaction_inside_roots_keeps_the_part_below_the_root(tmp_path):
    root = tmp_path / "my data"
    message = f"{root}/cats and dogs has only one class; {root}2/x and {root} too."
    shown = redact_paths(message, [root])
    # `{root}2` is not below the root: its path up to the space becomes a base name.
    assert shown == "my data/cats and dogs has only one class; my data2/x and my data too."


# -- the dashboard ---------------------------------------------------------------------------


@pytest.fixture
def dashboard(tmp_path, monkeypatch) -> Path:
    """An empty dashboard workspace; no workers are really started."""
    from core.runs import worker_process as jobs

    monkeypatch.setenv("PETLAB_WORKSPACE", str(tmp_path / "workspace"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    monkeypatch.setattr(jobs, "start_worker", lambda workspace: 4242)
    return tmp_path / "workspace"


def test_the_dashboard_refuses_a_folder_outside_its_roots(dashboard):
    from tests.apptest import start_app, texts

    at = start_app(data_source="folder", data_path="/etc").run()
    assert not at.exception, at.exception
    (shown,) = texts(at.main.error)
    assert "outside the data folders" in shown and "PETLAB_DATA_ROOTS" in shown
    assert any("outside the data folders" in text for text in texts(at.sidebar.error))
    assert not at.metric and not at.image and not at.get("plotly_chart")  # nothing of /etc is listed


def test_the_dashboard_refuses_a_symlink_out_and_training_queues_nothing(
    dashboard, class_folders, tmp_path, monkeypatch
):
    from core.runs.store import RunStore
    from tests.apptest import open_page, start_app, texts

    data = tmp_path / "data"
    data.mkdir()
    (data / "pets").symlink_to(class_folders, target_is_directory=True)
    monkeypatch.setenv(DATA_ROOTS_ENV, str(data))
    at = start_app(data_source="folder", data_path=str(data / "pets")).run()
    assert "outside the data folders" in texts(at.main.error)[0] and not at.metric
    open_page(at, "training")
    at.button(key="start_head").click().run()
    assert not at.exception
    assert any("outside the data folders" in text for text in texts(at.main.error))
    assert RunStore(dashboard).list() == []


def test_the_dashboard_opens_a_folder_inside_its_roots_and_hides_server_paths(
    dashboard, class_folders, monkeypatch
):
    from tests.apptest import start_app, texts

    monkeypatch.setenv(DATA_ROOTS_ENV, str(class_folders.parent))
    at = start_app(data_source="folder", data_path=str(class_folders)).run()
    assert not at.exception and not at.error, texts(at.error)
    assert texts(at.metric)[0] == "3"

    at.sidebar.text_input(key="data_path").set_value(str(class_folders / "missing")).run()
    (shown,) = texts(at.main.error)
    assert shown.startswith(f"{class_folders.parent.name}/pets/missing does not exist;")
    assert str(class_folders.parent) not in shown


# -- server defaults -------------------------------------------------------------------------


def test_the_default_server_listens_on_localhost_with_an_upload_limit():
    from ui.state import PHOTO_UPLOAD_MB, ZIP_UPLOAD_MB

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "localhost"
    limit = config["server"]["maxUploadSize"]
    assert isinstance(limit, int) and PHOTO_UPLOAD_MB <= ZIP_UPLOAD_MB <= limit <= 2048


def test_the_readme_says_how_to_expose_the_dashboard_deliberately():
    readme = (ROOT / "README.md").read_text()
    assert "--server.address 0.0.0.0" in readme
    assert "PETLAB_DATA_ROOTS" in readme
    assert "## Limits and failure behaviour" in readme
