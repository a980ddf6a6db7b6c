"""Every page under AppTest, each as its own test: on an empty workspace and beside a finished run.

No network and no GPU: the finished run is a tiny MobileNetV3Small with random weights at
32 px (tests/conftest.py `trained`), its data a generated folder of class folders.
"""

from __future__ import annotations

import ast

import pytest

from core.config import TrainConfig
from tests.apptest import chart, open_page, start_app, texts
from tests.conftest import REPO
from tests.test_layers import first_heavy_imports

# Every file in views/ and the title it shows.
PAGES = {
    "dataset": "Dataset",
    "augmentation": "Augmentation",
    "training": "Training",
    "evaluation": "Evaluation",
    "predict": "Predict",
    "embedding": "Embedding map",
    "label_issues": "Label issues",
}


def test_every_view_is_tested():
    assert sorted(path.stem for path in (REPO / "views").glob("*.py")) == sorted(PAGES)


def imported_at_load(page: str) -> list[str]:
    """The modules a page imports when it starts (not those its functions import when a button asks)."""
    modules = []
    for node in ast.parse((REPO / "views" / f"{page}.py").read_text()).body:
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            modules.append(node.module)
            submodules = [f"{node.module}.{alias.name}" for alias in node.names]
            modules += [name for name in submodules if (REPO / f"{name.replace('.', '/')}.py").is_file()]
    return modules


@pytest.mark.parametrize("page", list(PAGES))
def test_page_draws_without_importing_tensorflow(page):
    """No page imports TensorFlow to draw: the model engine (ui.engine) loads it in the background."""
    assert first_heavy_imports(imported_at_load(page)) == {}


@pytest.mark.parametrize("page", list(PAGES))
def test_page_renders_on_an_empty_workspace(page, workspace):
    at = open_page(start_app(), page)
    assert PAGES[page] in texts(at.title)


@pytest.mark.parametrize("page", list(PAGES))
def test_page_renders_beside_a_finished_run(page, trained_copy, pets):
    at = open_page(start_app(data_source="folder", data_path=str(pets)), page)
    assert PAGES[page] in texts(at.title)
    assert not at.error, texts(at.error)


# -- a tour of every page, with what each shows first --------------------------------------


def test_every_page_renders_on_an_empty_workspace(workspace):
    at = start_app()
    # The reference source is not prepared here: a clear message and a button, never a spinner.
    assert "not prepared" in texts(at.info)[0]
    assert at.button(key="prepare_dataset").label == "Download and prepare the dataset"
    open_page(at, "augmentation")
    assert at.session_state["augment_spec"] == TrainConfig().augment
    open_page(at, "training")
    assert any("No runs yet" in text for text in texts(at.info))
    assert at.button(key="start_finetune").disabled
    open_page(at, "predict")
    assert any("no finished run" in text for text in texts(at.info))
    open_page(at, "dataset")
    assert [c.value for c in at.sidebar.caption if "trains on" in c.value]


def test_every_page_renders_with_runs(trained, pets, workspace, monkeypatch):
    monkeypatch.setenv("PETLAB_WORKSPACE", str(trained))
    at = start_app(data_source="folder", data_path=str(pets))
    at.run()
    assert not at.exception
    assert texts(at.metric) == ["6", str(30), str(6), str(12)]
    for page in ("augmentation", "predict"):
        open_page(at, page)
        assert not at.error, texts(at.error)
    open_page(at, "training")
    assert "Run 1 is done" in texts(at.success)[0]
    table = at.dataframe[0].value
    assert table["run"].tolist() == [1] and table["status"].tolist() == ["done"]
    assert table["backbone"].tolist() == ["mobilenetv3small"]
    assert {"best val accuracy %", "test accuracy %", "duration"} <= set(table.columns)
    assert {t["name"] for t in chart(at, "live_accuracy_chart")["data"]} == {"train", "validation"}
    assert "compare_runs" not in [w.key for w in at.multiselect]  # a closed section is not computed
    at.session_state["compare_open"] = True
    at.run()
    assert at.multiselect(key="compare_runs").value == [1]
    assert {t["name"] for t in chart(at, "compare_loss_chart")["data"]} == {
        "run 1, train",
        "run 1, validation",
    }
    assert at.selectbox(key="finetune_parent").value == 1
