"""The Evaluation page (views/evaluation.py, ui.gallery, ui.exports, ui.evaluate) under AppTest.

No network, no GPU: one real finished run (a tiny MobileNetV3Small with random weights at
32 px, tests/conftest.py `trained`); every test works on a private copy of its workspace.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.runs.layout import RunPaths
from core.runs.store import RunStore
from core.tables.evaluation import confused_pairs, confusion_frame, misclassified, mistakes_by_class
from tests.apptest import chart, open_page, start_app, texts
from tests.core.inference import known_answers as known


def report_of(workspace: Path, run_id: int = 1) -> dict:
    return json.loads(RunPaths.of(workspace, run_id).evaluation.read_text())


def add_run_copy(workspace: Path, report: dict | None = None, data: dict | None = None) -> int:
    """Register a second finished run: a copy of run 1's folder, with its own report or data config."""
    store = RunStore(workspace)
    config = store.get(1).config
    run_id = store.create("head", {**config, "data": data or config["data"]}, status="done")
    paths = RunPaths.of(workspace, run_id)
    shutil.copytree(RunPaths.of(workspace, 1).folder, paths.folder, dirs_exist_ok=True)
    if report is not None:
        paths.evaluation.write_text(json.dumps(report))
    store.close()
    return run_id


def evaluation_page(**sidebar):
    at = start_app(**sidebar)
    return open_page(at, "evaluation")


def open_tab(at, label: str):
    """Open one of the page's lazy tabs (only the open one is drawn) and rerun."""
    at.session_state["eval_tab"] = label
    return at.run()


def array(value) -> np.ndarray:
    """A figure's array, which plotly may send as base64 ({"dtype", "bdata", "shape"})."""
    if isinstance(value, dict) and "bdata" in value:
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = [int(n) for n in str(value.get("shape", len(flat))).split(",")]
        return flat.reshape(shape)
    return np.array(value)  # a None (a blank cell) becomes nan in .astype(float)


def matrix(at) -> np.ndarray:
    return array(chart(at, "confusion_chart")["data"][0]["z"]).astype(float)


def captions(at) -> list[str]:
    return [image.proto.imgs[0].caption for image in at.image]


def test_evaluation_page_on_an_empty_workspace(workspace):
    at = evaluation_page()
    assert any("no finished run" in text for text in texts(at.info))
    assert not at.error and not at.get("plotly_chart")


def test_evaluation_page_shows_a_finished_run(trained_copy):
    report = report_of(trained_copy)
    names = report["class_names"]
    at = evaluation_page()
    assert at.selectbox(key="eval_run").value == 1
    assert not at.error, texts(at.error)
    assert [m.label for m in at.metric][:4] == ["Test accuracy", "Top-5 accuracy", "Test loss", "Test images"]
    assert texts(at.metric)[:4] == [
        f"{100 * report['accuracy']:.1f}%",
        f"{100 * report['top5_accuracy']:.1f}%",
        f"{report['loss']:.3f}",
        str(report["count"]),
    ]

    heatmap = chart(at, "confusion_chart")["data"][0]
    assert heatmap["type"] == "heatmap" and heatmap["x"] == names and heatmap["y"] == names
    assert np.array_equal(matrix(at), np.array(report["confusion_matrix"]))
    assert "true" in heatmap["hovertemplate"] and "predicted" in heatmap["hovertemplate"]

    table = at.dataframe[0].value
    assert {"breed", "precision", "recall", "f1", "support"} <= set(table.columns)
    assert sorted(table["breed"]) == sorted(names) and table["support"].sum() == report["count"]
    # Lazy tabs: the other tabs' content is not computed until opened.
    assert not [c for c in captions(at) if " → " in c]
    assert "compare_run" not in [w.key for w in at.selectbox] and "export_keras" not in [
        b.key for b in at.button
    ]

    open_tab(at, "Mistakes")
    with pytest.raises(KeyError):  # the closed tab is not drawn any more
        chart(at, "confusion_chart")
    pairs = confused_pairs(report)
    bars = chart(at, "confused_pairs_chart")["data"][0]
    assert list(array(bars["y"])) == (pairs["true"] + " → " + pairs["predicted"]).tolist()

    wrong = misclassified(report)
    shown = [c for c in captions(at) if " → " in c]
    assert wrong and len(shown) == min(24, len(wrong))
    first = wrong[0]
    expected = f"{names[report['labels'][first]]} → {names[report['predicted'][first]]}"
    assert shown[0].startswith(expected)

    breed = next(iter(mistakes_by_class(report)))
    at.selectbox(key="gallery_breed").set_value(breed).run()
    shown = [c for c in captions(at) if " → " in c]
    assert shown and all(c.startswith(f"{breed} → ") for c in shown)
    assert len(shown) == mistakes_by_class(report)[breed]

    open_tab(at, "Export")
    code = [block.value for block in at.code]
    assert code == ["tensorboard --logdir workspace/runs"]  # the workspace's name, not its path


def test_normalise_and_hide_diagonal_change_the_matrix(trained_copy):
    report = report_of(trained_copy)
    at = evaluation_page()
    counts = matrix(at)
    at.toggle(key="cm_normalize").set_value(True).run()
    shares = matrix(at)
    assert not np.array_equal(counts, shares)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    np.testing.assert_allclose(shares, confusion_frame(report, normalize=True).to_numpy())

    at.toggle(key="cm_hide_diagonal").set_value(True).run()
    z = matrix(at)
    assert np.isnan(np.diag(z)).all() and np.array_equal(
        z[~np.eye(len(z), dtype=bool)], shares[~np.eye(len(z), dtype=bool)]
    )


def test_a_run_without_evaluation_offers_to_evaluate_it(trained_copy):
    path = RunPaths.of(trained_copy, 1).evaluation
    expected = json.loads(path.read_text())
    path.unlink()
    at = evaluation_page()
    assert any("no test evaluation" in text for text in texts(at.info))
    assert not at.get("plotly_chart") and at.button(key="export_keras")  # export stays available
    at.button(key="evaluate_run").click().run()
    assert not at.exception and not at.error, texts(at.error)
    report = json.loads(path.read_text())
    assert report["labels"] == expected["labels"] and report["class_names"] == expected["class_names"]
    assert texts(at.metric)[0] == f"{100 * report['accuracy']:.1f}%"
    assert RunStore(trained_copy).get(1).metrics["test_accuracy"] == pytest.approx(report["accuracy"])
    chart(at, "confusion_chart")


def test_the_page_shows_the_hand_computed_numbers(workspace, tmp_path):
    """Catches the page transposing the matrix, mixing up the per-breed columns or rows, or
    rounding a metric wrongly: a run whose model outputs known probabilities is evaluated from
    the page, and what it shows is compared with numbers worked out by hand
    (tests/core/inference/known_answers.py)."""
    known.write_known_run(workspace, tmp_path / "known")
    at = evaluation_page()
    at.button(key="evaluate_run").click().run()
    assert not at.exception and not at.error, texts(at.error)
    assert texts(at.metric)[:4] == ["60.0%", "90.0%", f"{known.LOSS:.3f}", "10"]
    assert f"{known.LOSS:.3f}" == "1.548"

    heatmap = chart(at, "confusion_chart")["data"][0]
    assert heatmap["y"] == known.NAMES and heatmap["x"] == known.NAMES  # rows: the true breeds
    assert matrix(at).tolist() == known.CONFUSION

    table = at.dataframe[0].value.set_index("breed")
    for breed, (precision, recall, f1, support) in known.PER_CLASS.items():
        shown = table.loc[breed]
        assert (shown["precision"], shown["recall"], shown["f1"]) == pytest.approx((precision, recall, f1))
        assert shown["support"] == support

    at.toggle(key="cm_normalize").set_value(True).run()
    assert matrix(at)[1].tolist() == [0.0, 0.5, 0.0, 0.5, 0.0, 0.0]  # Bengal: 1 right, 1 as beagle

    bars = chart(open_tab(at, "Mistakes"), "confused_pairs_chart")["data"][0]
    assert list(array(bars["y"])) == known.CONFUSED_PAIRS


def test_two_runs_side_by_side(trained_copy):
    report = report_of(trained_copy)
    names = report["class_names"]
    other = json.loads(json.dumps(report))
    other["accuracy"] = report["accuracy"] - 0.125
    other["per_class"][0]["recall"] = report["per_class"][0]["recall"] - 0.5
    other["per_class"][1]["recall"] = report["per_class"][1]["recall"] + 0.25
    other_id = add_run_copy(trained_copy, other)
    at = open_tab(evaluation_page(), "Compare runs")
    assert at.selectbox(key="compare_run").value is None
    at.selectbox(key="compare_run").set_value(other_id).run()
    assert not at.exception and not at.error, texts(at.error)
    deltas = [m for m in at.metric if m.label.endswith(", run 1")]
    assert [m.label for m in deltas] == ["Test accuracy, run 1", "Top-5 accuracy, run 1", "Test loss, run 1"]
    assert deltas[0].delta == f"+12.5 pp vs run {other_id}" and deltas[1].delta.startswith("+0.0 pp")
    figure = chart(at, "compare_recall_chart")
    bars = {
        name: float(y)
        for trace in figure["data"]
        for name, y in zip(array(trace["x"]), array(trace["y"]), strict=True)
    }
    assert set(bars) == set(names)
    assert bars[names[0]] == pytest.approx(50.0) and bars[names[1]] == pytest.approx(-25.0)
    assert {trace["name"] for trace in figure["data"]} == {"run 1", f"run {other_id}", "same"}


def test_gallery_refuses_test_images_outside_the_data_roots(trained_copy):
    run_id = add_run_copy(trained_copy, data={"source": "folder", "path": "/srv/private/pets"})
    at = evaluation_page()
    at.selectbox(key="eval_run").set_value(run_id).run()
    chart(at, "confusion_chart")  # the test results show
    open_tab(at, "Mistakes")
    assert not at.exception
    (message,) = texts(at.error)
    assert "outside the data folders" in message and "/srv" not in message
    assert "The test images cannot be read, so the mistakes are not shown." in texts(at.caption)
    assert not [c for c in captions(at) if " → " in c]


def test_a_stale_evaluation_is_not_matched_with_the_wrong_images(trained_copy):
    path = RunPaths.of(trained_copy, 1).evaluation
    report = json.loads(path.read_text())
    current = list(report["labels"])
    report["labels"] = current[::-1]  # as if the test split had changed since
    path.write_text(json.dumps(report))
    at = open_tab(evaluation_page(), "Mistakes")
    assert any("have changed" in text for text in texts(at.warning))
    assert not [c for c in captions(at) if " → " in c]
    at.button(key="reevaluate_run").click().run()
    assert not at.exception and not at.error, texts(at.error)
    assert json.loads(path.read_text())["labels"] == current
    assert not at.warning and [c for c in captions(at) if " → " in c]


def test_export_keras_gives_a_download(trained_copy):
    at = open_tab(evaluation_page(), "Export")
    assert "Nothing exported yet." in texts(at.caption)
    at.button(key="export_keras").click().run()
    assert not at.exception and not at.error, texts(at.error)
    paths = RunPaths.of(trained_copy, 1)
    assert paths.export_model("keras").is_file()
    names = paths.export_labels.read_text().split()
    assert names == report_of(trained_copy)["class_names"]
    keys = {button.key for button in at.get("download_button")}
    assert keys == {"download_keras", "download_labels", "download_report"}
    assert not paths.export_model("tflite").exists()


def report_button(at):
    (button,) = [b for b in at.get("download_button") if b.proto.id.endswith("-download_report")]
    return button.proto


@pytest.fixture
def deferred_downloads(monkeypatch) -> dict:
    """{file id: callable} of every download button whose data is built only when it is clicked."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    callables, original = {}, MediaFileManager.add_deferred

    def add_deferred(self, data, *args, **kwargs):
        file_id = original(self, data, *args, **kwargs)
        callables[file_id] = data
        return file_id

    monkeypatch.setattr(MediaFileManager, "add_deferred", add_deferred)
    return callables


def test_the_report_download_is_built_only_when_clicked(trained_copy, deferred_downloads, monkeypatch):
    import core.reports.run_report as run_report

    built, original = [], run_report.run_report_html
    monkeypatch.setattr(run_report, "run_report_html", lambda store, i: built.append(i) or original(store, i))
    at = evaluation_page()
    button = report_button(at)
    assert button.label == "Download the report (HTML)" and not button.url  # no data sent yet
    at.toggle(key="cm_normalize").set_value(True).run()
    assert not built  # drawing the page, and drawing it again, built no report

    html = deferred_downloads[report_button(at).deferred_file_id]().decode("utf-8")  # the click
    assert built == [1] and 'id="confusion-matrix"' in html


def test_a_run_not_evaluated_yet_has_a_report_to_download(trained_copy, deferred_downloads):
    RunPaths.of(trained_copy, 1).evaluation.unlink()
    at = evaluation_page()
    html = deferred_downloads[report_button(at).deferred_file_id]().decode("utf-8")
    assert "no test evaluation yet" in html and 'id="curve-loss"' in html
