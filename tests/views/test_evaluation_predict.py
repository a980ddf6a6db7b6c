"""The Evaluation page, Grad-CAM on the Predict page, and the helpers behind them (core.tables.evaluation).

Like tests/test_app.py: no network, no GPU, one real finished run (a tiny
MobileNetV3Small with random weights at 32 px, trained in-process) built once per
module; tests work on a private copy of its workspace.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.runs.store import RunStore
from core.tables.evaluation import (
    class_choices,
    confused_pairs,
    confusion_frame,
    format_bytes,
    load_evaluation,
    matches_test_split,
    metric_deltas,
    misclassified,
    mistakes_by_class,
    per_class_frame,
    recall_diff_frame,
    run_label,
    size_of,
    zip_folder,
)
from tests.apptest import chart, open_page, start_app, texts
from tests.tiny_models import CLASS_NAMES


def report_of(workspace: Path, run_id: int = 1) -> dict:
    return json.loads((workspace / "runs" / str(run_id) / "evaluation.json").read_text())


def add_run_copy(workspace: Path, report: dict | None = None, data: dict | None = None) -> int:
    """Register a second finished run: a copy of run 1's folder, with its own report or data config."""
    store = RunStore(workspace)
    config = store.get(1).config
    run_id = store.create("head", {**config, "data": data or config["data"]}, status="done")
    shutil.copytree(workspace / "runs" / "1", workspace / "runs" / str(run_id), dirs_exist_ok=True)
    if report is not None:
        (workspace / "runs" / str(run_id) / "evaluation.json").write_text(json.dumps(report))
    store.close()
    return run_id


def evaluation_page(**sidebar):
    at = start_app(**sidebar)
    return open_page(at, "evaluation")


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


# -- the Evaluation page -----------------------------------------------------------------


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
    path = trained_copy / "runs" / "1" / "evaluation.json"
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


def test_two_runs_side_by_side(trained_copy):
    report = report_of(trained_copy)
    names = report["class_names"]
    other = json.loads(json.dumps(report))
    other["accuracy"] = report["accuracy"] - 0.125
    other["per_class"][0]["recall"] = report["per_class"][0]["recall"] - 0.5
    other["per_class"][1]["recall"] = report["per_class"][1]["recall"] + 0.25
    other_id = add_run_copy(trained_copy, other)
    at = evaluation_page()
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
    assert not at.exception
    (message,) = texts(at.error)
    assert "outside the data folders" in message and "/srv" not in message
    assert not [c for c in captions(at) if " → " in c]
    chart(at, "confusion_chart")  # the rest of the page still shows


def test_a_stale_evaluation_is_not_matched_with_the_wrong_images(trained_copy):
    path = trained_copy / "runs" / "1" / "evaluation.json"
    report = json.loads(path.read_text())
    current = list(report["labels"])
    report["labels"] = current[::-1]  # as if the test split had changed since
    path.write_text(json.dumps(report))
    at = evaluation_page()
    assert any("have changed" in text for text in texts(at.warning))
    assert not [c for c in captions(at) if " → " in c]
    at.button(key="reevaluate_run").click().run()
    assert not at.exception and not at.error, texts(at.error)
    assert json.loads(path.read_text())["labels"] == current
    assert not at.warning and [c for c in captions(at) if " → " in c]


def test_export_keras_gives_a_download(trained_copy):
    at = evaluation_page()
    assert "Nothing exported yet." in texts(at.caption)
    at.button(key="export_keras").click().run()
    assert not at.exception and not at.error, texts(at.error)
    export = trained_copy / "runs" / "1" / "export"
    assert (export / "model.keras").is_file()
    names = (export / "labels.txt").read_text().split()
    assert names == report_of(trained_copy)["class_names"]
    keys = {button.key for button in at.get("download_button")}
    assert keys == {"download_keras", "download_labels"}
    assert not (export / "model.tflite").exists()


# -- Grad-CAM on the Predict page ---------------------------------------------------------


@pytest.fixture
def explainable(workspace) -> Path:
    """A workspace whose finished run has calibrated BatchNorm at 64 px, so heatmaps depend on the class."""
    import keras

    from core.catalog.backbones import get_backbone
    from core.model.classifier import build_model
    from tests.tiny_models import calibrate_batchnorm, colour_images, save_done_run

    keras.utils.set_random_seed(0)
    model = build_model(get_backbone("mobilenetv3small"), 3, 64, weights=None)
    calibrate_batchnorm(model, colour_images(48, 64)[0])
    store = RunStore(workspace)
    save_done_run(store, model)
    store.close()
    return workspace


def split_photo() -> bytes:
    """Red on the left, blue on the right: the classes' heatmaps differ in where they are hot."""
    pixels = np.zeros((48, 80, 3), dtype=np.uint8)
    pixels[:, :40] = (200, 40, 40)
    pixels[:, 40:] = (40, 40, 200)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def gradcam(at) -> tuple[str, str]:
    """(caption, url) of the only Grad-CAM overlay on the page."""
    (image,) = [image.proto.imgs[0] for image in at.image if image.proto.imgs[0].caption.startswith("Grad")]
    return image.caption, image.url


def test_predict_shows_grad_cam_for_the_top_class_and_any_other(explainable):
    at = start_app()
    open_page(at, "predict")
    at.file_uploader(key="predict_upload").set_value(
        [("split.png", split_photo(), "image/png"), ("broken.jpg", b"not an image", "image/jpeg")]
    ).run()
    assert not at.exception
    assert len(at.error) == 1 and "broken.jpg" in texts(at.error)[0]  # the bad file keeps its message
    best = next(m.value for m in at.markdown if m.value.startswith("Most likely")).split("**")[1]
    caption, url = gradcam(at)
    assert caption == f"Grad-CAM: {best}"
    select = at.selectbox(key="gradcam_class_0")
    assert select.value == CLASS_NAMES.index(best)

    seen = {url}
    others = [i for i in range(3) if i != select.value]
    for index in others:
        at.selectbox(key="gradcam_class_0").set_value(index).run()
        assert not at.exception and len(at.error) == 1
        caption, url = gradcam(at)
        assert caption == f"Grad-CAM: {CLASS_NAMES[index]}"
        seen.add(url)
    assert len(seen) == 3  # each class paints its own overlay

    at.slider(key="gradcam_alpha").set_value(0.0).run()  # no heatmap: the photo itself
    assert gradcam(at)[1] not in seen


# -- core.tables.evaluation -----------------------------------------------------------------------

NAMES = ["Abyssinian", "beagle", "pug"]


def small_report() -> dict:
    labels = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    predicted = [0, 0, 1, 2, 1, 0, 1, 2, 1, 1]
    confidence = [0.9, 0.8, 0.7, 0.95, 0.6, 0.55, 0.5, 0.99, 0.4, 0.85]
    counts = np.zeros((3, 3), dtype=int)
    np.add.at(counts, (labels, predicted), 1)
    support = counts.sum(axis=1)
    per_class = []
    for i, name in enumerate(NAMES):
        precision = counts[i, i] / counts[:, i].sum()
        recall = counts[i, i] / support[i]
        f1 = 2 * precision * recall / (precision + recall)
        per_class.append(
            {"class": name, "precision": precision, "recall": recall, "f1": f1, "support": int(support[i])}
        )
    return {
        "count": len(labels),
        "loss": 0.8,
        "accuracy": float(np.mean(np.array(labels) == np.array(predicted))),
        "top5_accuracy": 1.0,
        "class_names": NAMES,
        "per_class": per_class,
        "confusion_matrix": counts.tolist(),
        "predicted": predicted,
        "labels": labels,
        "confidence": confidence,
    }


def test_confusion_frame_counts_and_row_shares():
    report = small_report()
    counts = confusion_frame(report)
    assert list(counts.index) == NAMES and list(counts.columns) == NAMES
    assert counts.loc["pug", "beagle"] == 2 and counts.to_numpy().sum() == 10
    shares = confusion_frame(report, normalize=True)
    assert shares.loc["Abyssinian"].tolist() == [0.5, 0.25, 0.25]
    assert shares.loc["pug", "beagle"] == pytest.approx(2 / 3)
    report["confusion_matrix"][2] = [0, 0, 0]  # a breed without test images stays all zero
    assert confusion_frame(report, normalize=True).loc["pug"].tolist() == [0.0, 0.0, 0.0]


def test_per_class_frame_and_confused_pairs():
    report = small_report()
    table = per_class_frame(report)
    assert table.columns.tolist() == ["breed", "species", "precision", "recall", "f1", "support"]
    assert table["species"].tolist() == ["cat", "dog", "dog"] and table["support"].tolist() == [4, 3, 3]
    pairs = confused_pairs(report)
    assert pairs[["true", "predicted", "count"]].values.tolist() == [
        ["pug", "beagle", 2],
        ["beagle", "Abyssinian", 1],  # same count: the larger share of its breed first
        ["Abyssinian", "beagle", 1],
        ["Abyssinian", "pug", 1],
    ]
    assert pairs["share"].tolist() == pytest.approx([2 / 3, 1 / 3, 0.25, 0.25])
    assert len(confused_pairs(report, top=2)) == 2
    perfect = {**report, "confusion_matrix": np.diag([4, 3, 3]).tolist()}
    assert confused_pairs(perfect).empty


def test_misclassified_images_most_confident_first_and_by_breed():
    report = small_report()
    assert misclassified(report) == [3, 9, 2, 5, 8]
    assert misclassified(report, limit=2) == [3, 9]
    assert misclassified(report, "pug") == [9, 8]
    assert misclassified(report, "unknown") == []
    assert mistakes_by_class(report) == {"Abyssinian": 2, "pug": 2, "beagle": 1}
    assert matches_test_split(report, np.array(report["labels"]))
    assert not matches_test_split(report, np.array(report["labels"][:-1]))
    old = {k: v for k, v in report.items() if k != "predicted"}  # a report without per-image lists
    assert misclassified(old) == [] and mistakes_by_class(old) == {} and not matches_test_split(old, [])


def test_two_reports_compared():
    report, other = small_report(), small_report()
    other["accuracy"], other["loss"] = 0.4, 1.0
    other["per_class"][2]["recall"] = 1.0
    other["per_class"] = other["per_class"] + [{**other["per_class"][0], "class": "boxer"}]
    deltas = metric_deltas(report, other)
    assert deltas["accuracy"] == pytest.approx((0.5, 0.1)) and deltas["loss"] == pytest.approx((0.8, -0.2))
    assert deltas["top5_accuracy"] == (1.0, 0.0)
    frame = recall_diff_frame(report, other, "run 1", "run 2")
    assert frame.columns.tolist() == ["breed", "run 1", "run 2", "difference", "better"]
    assert frame["breed"].tolist() == ["Abyssinian", "beagle", "pug"]  # boxer is in one run only
    assert frame["difference"].tolist() == pytest.approx([0.0, 0.0, 1 / 3 - 1.0])
    assert frame["better"].tolist() == ["same", "same", "run 2"]


def test_load_evaluation_skips_missing_damaged_or_incomplete_reports(tmp_path):
    assert load_evaluation(tmp_path) is None
    path = tmp_path / "evaluation.json"
    path.write_text("{not json")
    assert load_evaluation(tmp_path) is None
    path.write_text(json.dumps({"accuracy": 1.0}))
    assert load_evaluation(tmp_path) is None
    path.write_text(json.dumps({**small_report(), "confusion_matrix": [[1]]}))
    assert load_evaluation(tmp_path) is None
    path.write_text(json.dumps(small_report()))
    assert load_evaluation(tmp_path)["class_names"] == NAMES


def test_zip_sizes_labels_and_class_choices(tmp_path):
    folder = tmp_path / "savedmodel"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"x" * 100)
    (folder / "variables" / "variables.index").write_bytes(b"y" * 28)
    with zipfile.ZipFile(io.BytesIO(zip_folder(folder))) as archive:
        assert sorted(archive.namelist()) == [
            "savedmodel/saved_model.pb",
            "savedmodel/variables/variables.index",
        ]
        assert archive.read("savedmodel/saved_model.pb") == b"x" * 100
    assert size_of(folder) == 128 and size_of(folder / "saved_model.pb") == 100
    assert [format_bytes(n) for n in (512, 3 * 1024 + 400, 12 * 1024**2, 3 * 1024**3)] == [
        "512 B",
        "3.4 KB",
        "12.0 MB",
        "3.0 GB",
    ]
    assert class_choices(NAMES, [("pug", 0.7), ("Abyssinian", 0.2)]) == [2, 0, 1]

    from core.runs.store import RunRecord

    record = RunRecord(
        id=3, kind="finetune", parent=2, status="done", config={"train": {"backbone": "mobilenetv3small"}},
        created=0.0, started=None, finished=None, pid=None, error=None,
        metrics={"best_val_accuracy": 0.912, "test_accuracy": 0.9}, progress={}, cancel_requested=False,
    )  # fmt: skip
    assert run_label(record) == "run 3 · mobilenetv3small · fine-tuned from run 2 · val 91.2% · test 90.0%"
