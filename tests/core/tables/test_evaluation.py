"""core.tables.evaluation: the evaluation report shaped into what the Evaluation and Predict pages show."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from core.config import DataConfig
from core.runs.records import RunRecord
from core.tables.evaluation import (
    class_choices,
    confused_pairs,
    confusion_frame,
    delta_color,
    format_bytes,
    headline_metrics,
    load_evaluation,
    matches_test_split,
    metric_changes,
    metric_deltas,
    misclassified,
    mistake_caption,
    mistakes_by_class,
    per_class_frame,
    read_test_split,
    recall_diff_frame,
    row_shares,
    run_label,
    size_of,
    zip_folder,
)

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
    assert row_shares(counts).equals(shares)
    report["confusion_matrix"][2] = [0, 0, 0]  # a breed without test images stays all zero
    assert confusion_frame(report, normalize=True).loc["pug"].tolist() == [0.0, 0.0, 0.0]


def test_headline_metrics_are_ready_to_show():
    report = small_report()
    assert headline_metrics(report) == {
        "Test accuracy": "50.0%",
        "Top-5 accuracy": "100.0%",
        "Test loss": "0.800",
        "Test images": "10",
    }
    without_count = {k: v for k, v in report.items() if k != "count"}
    assert headline_metrics(without_count)["Test images"] == "10"  # summed from the matrix


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
    assert mistake_caption(report, 3) == "Abyssinian → pug (95%)"
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


def test_metric_changes_say_which_way_is_better():
    report, other = small_report(), small_report()
    other["accuracy"], other["loss"] = 0.4, 1.0
    accuracy, top5, loss = metric_changes(report, other, "run 1", "run 2")
    assert (accuracy.label, accuracy.value, accuracy.change) == (
        "Test accuracy, run 1",
        "50.0%",
        "+10.0 pp vs run 2",
    )
    assert accuracy.delta_color == "normal"
    assert (top5.change, top5.delta_color) == ("+0.0 pp vs run 2", "off")  # no change: grey
    assert (loss.value, loss.change, loss.delta_color) == ("0.800", "-0.200 vs run 2", "inverse")
    assert delta_color("-0.0 pp vs run 2") == "off" and delta_color("+0.1 pp", "inverse") == "inverse"


def test_load_evaluation_skips_missing_damaged_or_incomplete_reports(tmp_path):
    path = tmp_path / "evaluation.json"
    assert load_evaluation(path) is None
    path.write_text("{not json")
    assert load_evaluation(path) is None
    path.write_text(json.dumps({"accuracy": 1.0}))
    assert load_evaluation(path) is None
    path.write_text(json.dumps({**small_report(), "confusion_matrix": [[1]]}))
    assert load_evaluation(path) is None
    path.write_text(json.dumps(small_report()))
    assert load_evaluation(path)["class_names"] == NAMES


def test_read_test_split_gives_the_cached_test_images(tmp_path, class_folders):
    data = DataConfig(source="folder", path=str(class_folders))
    images, labels = read_test_split(tmp_path / "workspace", data, 32)
    assert images.shape[1:] == (32, 32, 3) and images.dtype == np.uint8
    assert len(images) == len(labels) > 0
    again, again_labels = read_test_split(tmp_path / "workspace", data, 32)  # from the cache now
    assert np.array_equal(again, images) and np.array_equal(again_labels, labels)


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


def test_run_label():
    record = RunRecord(
        id=3,
        kind="finetune",
        parent=2,
        status="done",
        config={"train": {"backbone": "mobilenetv3small"}},
        created=0.0,
        started=None,
        finished=None,
        pid=None,
        error=None,
        metrics={"best_val_accuracy": 0.912, "test_accuracy": 0.9},
        progress={},
        cancel_requested=False,
    )
    assert run_label(record) == "run 3 · mobilenetv3small · fine-tuned from run 2 · val 91.2% · test 90.0%"
