"""Evaluation of a trained model on the test split.

Loss, accuracy and top-5 accuracy, per-class precision / recall / F1 and the
confusion matrix, computed from one pass of the model over the test images.
The report is plain JSON, written to the run's `evaluation.json` (core.runs.layout).
"""

from __future__ import annotations

import keras
import numpy as np

from core.catalog.backbones import default_image_size
from core.errors import BadInputError, NotFoundError
from core.inference.predict import load_run_model
from core.model.classifier import compiled_forward
from core.progress import ProgressCallback, no_progress
from core.runs.store import RunStore
from core.training.datasets import load_split_arrays, make_dataset
from core.workspace import atomic_write_json


def predict_probabilities(
    model: keras.Model, images: np.ndarray, batch_size: int = 64, progress: ProgressCallback = no_progress
) -> np.ndarray:
    """Class probabilities for uint8 images, batch by batch, with progress."""
    labels = np.zeros(len(images), dtype=np.int64)
    dataset = make_dataset(images, labels, 1, batch_size)
    infer = compiled_forward(model)
    chunks, done = [], 0
    for x, _ in dataset:
        chunks.append(np.asarray(infer(x)))
        done += int(x.shape[0])
        progress("evaluating", done, len(images))
    if not chunks:
        return np.zeros((0, model.output_shape[-1]), dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32)


def classification_report(probabilities: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict:
    """Loss, accuracy, top-5, per-class precision/recall/F1 and the confusion matrix."""
    num_classes = len(class_names)
    labels = np.asarray(labels, dtype=np.int64)
    predicted = probabilities.argmax(axis=1) if len(labels) else np.zeros(0, dtype=np.int64)
    eps = 1e-7
    picked = probabilities[np.arange(len(labels)), labels] if len(labels) else np.zeros(0)
    loss = float(-np.mean(np.log(np.clip(picked, eps, 1.0)))) if len(labels) else float("nan")
    k = min(5, num_classes)
    top_k = np.argsort(-probabilities, axis=1)[:, :k] if len(labels) else np.zeros((0, k), dtype=np.int64)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    true_positives = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted_count = confusion.sum(axis=0)
    precision = np.divide(
        true_positives, predicted_count, out=np.zeros(num_classes), where=predicted_count > 0
    )
    recall = np.divide(true_positives, support, out=np.zeros(num_classes), where=support > 0)
    f1_denominator = precision + recall
    f1 = np.divide(
        2 * precision * recall, f1_denominator, out=np.zeros(num_classes), where=f1_denominator > 0
    )
    return {
        "count": len(labels),
        "loss": loss,
        "accuracy": float(np.mean(predicted == labels)) if len(labels) else float("nan"),
        "top5_accuracy": float(np.mean((top_k == labels[:, None]).any(axis=1)))
        if len(labels)
        else float("nan"),
        "class_names": list(class_names),
        "per_class": [
            {
                "class": name,
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        ],
        "confusion_matrix": confusion.tolist(),
        "predicted": predicted.tolist(),
        "labels": labels.tolist(),
        "confidence": probabilities.max(axis=1).round(6).tolist() if len(labels) else [],
    }


def evaluate_model(
    model: keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    progress: ProgressCallback = no_progress,
) -> dict:
    """The full evaluation report of `model` on the given test images."""
    return classification_report(predict_probabilities(model, images, progress=progress), labels, class_names)


def summary_metrics(report: dict) -> dict:
    """The registry's test_* metrics from an evaluation report."""
    return {
        "test_loss": report["loss"],
        "test_accuracy": report["accuracy"],
        "test_top5_accuracy": report["top5_accuracy"],
        "test_count": report["count"],
    }


def evaluate_run(store: RunStore, run_id: int, progress: ProgressCallback = no_progress) -> dict:
    """Evaluate a finished run on its test split; writes its evaluation report and updates the registry."""
    record = store.get(run_id)
    if record.broken:
        raise BadInputError(record.broken)
    paths = store.paths(run_id)
    if not paths.model.is_file():
        raise NotFoundError(f"Run {run_id} has no saved model ({record.status}); pick a finished run.")
    model, class_names = load_run_model(paths)
    image_size = default_image_size(record.train.backbone, record.train.image_size)
    _, arrays = load_split_arrays(record.data, store.workspace, image_size, progress)
    images, labels = arrays["test"]
    report = evaluate_model(model, images, labels, class_names, progress)
    atomic_write_json(paths.evaluation, report)
    store.update_metrics(run_id, summary_metrics(report))
    return report
