"""app.py under AppTest: the router and the shared sidebar (ui.sidebar) whose settings every page reads.

No network and no GPU; runs are queued, never trained (the worker process is replaced by a
record of the workspaces it was started for, the `spawned` fixture).
"""

from __future__ import annotations

import ast

from core import config as core_config
from core.catalog.choices import unfreeze_choice
from core.config import TrainConfig
from core.runs import worker_process as jobs
from core.runs.store import RunStore
from tests.apptest import APP, TINY, open_page, start_app, texts


def test_the_router_lists_every_view_in_order():
    tree = ast.parse(APP.read_text())
    paths = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and str(node.value).startswith("views/")
    ]
    assert paths == [
        f"views/{name}.py"
        for name in (
            "dataset",
            "augmentation",
            "training",
            "evaluation",
            "predict",
            "embedding",
            "label_issues",
        )
    ]


def test_the_router_imports_no_tensorflow():
    """app.py imports only streamlit, core.config and ui (ui itself: tests/test_layers.py)."""
    imported = set()
    for node in ast.walk(ast.parse(APP.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert imported <= {"__future__", "os", "streamlit", "core", "ui"}


def test_sidebar_defaults_come_from_core_config(workspace):
    at = start_app()
    train, config = TrainConfig(), core_config
    assert at.selectbox(key="data_source").value == config.DATA.source
    assert at.selectbox(key="backbone").value == train.backbone
    assert at.selectbox(key="weights").value == train.weights
    assert at.number_input(key="epochs").value == train.epochs
    assert at.select_slider(key="lr").value == train.lr
    assert at.number_input(key="batch_size").value == train.batch_size
    assert at.number_input(key="patience").value == train.patience
    assert at.number_input(key="ft_epochs").value == config.FINETUNE.epochs
    assert at.select_slider(key="ft_lr").value == config.FINETUNE.lr
    assert at.radio(key="ft_unfreeze").value == config.FINETUNE.unfreeze
    assert unfreeze_choice("all") == (True, None) and unfreeze_choice("12") == (False, 12)


def test_sidebar_shows_the_device_and_only_the_workspace_name(workspace):
    at = start_app()
    captions = texts(at.sidebar.caption)
    assert any(c.startswith("Next run trains on: **") for c in captions)
    assert f"Workspace: `{workspace.name}`" in captions and not any(str(workspace) in c for c in captions)


def test_the_device_comes_from_the_workspace_note_and_is_probed_once_in_the_background(
    workspace, device_probes
):
    """Catches: the server importing TensorFlow to name the device, or probing on every rerun."""
    at = start_app()
    assert "Next run trains on: **checking…**" in texts(at.sidebar.caption)
    open_page(at, "training")
    assert device_probes == [workspace.resolve()]
    jobs.record_device(workspace, "GPU: Test Card, mixed precision")
    open_page(at, "dataset")
    assert "Next run trains on: **GPU: Test Card, mixed precision**" in texts(at.sidebar.caption)
    assert device_probes == [workspace.resolve()]


def test_a_data_path_outside_the_data_roots_is_refused_in_the_sidebar(workspace):
    at = start_app(data_source="folder", data_path="/srv/private/pets")
    at.run()
    assert not at.exception
    message = texts(at.sidebar.error)[0]
    assert "outside the data folders" in message and "/srv" not in message


def test_sidebar_settings_survive_page_switches_and_are_what_gets_queued(workspace, pets, spawned):
    at = start_app(
        data_source="folder", data_path=str(pets), epochs=3, lr=1e-4, batch_size=8, patience=2, **TINY
    )
    open_page(at, "augmentation")
    open_page(at, "training")
    assert at.number_input(key="epochs").value == 3  # still there after two page switches
    at.button(key="start_head").click().run()
    assert not at.exception and not at.error, texts(at.error)

    store = RunStore(workspace)
    (record,) = store.list()
    assert record.status == "queued" and record.kind == "head"
    train = record.train
    assert (train.epochs, train.lr, train.batch_size, train.patience) == (3, 1e-4, 8, 2)
    assert (train.backbone, train.weights, train.image_size) == ("mobilenetv3small", "none", 32)
    assert (record.data.source, record.data.path) == ("folder", str(pets.resolve()))
    assert spawned == [workspace.resolve()]
    assert "Run 1 is queued" in texts(at.info)[0]

    # A second start while the first waits is queued behind it, and shown so.
    at.number_input(key="epochs").set_value(4)
    at.button(key="start_head").click().run()
    assert [r.status for r in store.list()] == ["queued", "queued"]
    assert store.get(2).train.epochs == 4
    assert "Also queued: run 2" in texts(at.caption)
    assert len(spawned) == 2
