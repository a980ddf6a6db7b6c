"""The evaluation report (core.inference.evaluate) checked against numbers worked out by hand.

Catches: a transposed confusion matrix, precision and recall swapped, a top-k that is really
top-4 or top-6, a loss on the wrong probability, a per-class row under another breed's name;
the hand-made data and its answers are in tests/core/inference/known_answers.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.inference.evaluate import classification_report, evaluate_model, summary_metrics
from tests.core.inference import known_answers as known
from tests.core.inference.known_answers import assert_matches_the_hand_answers


def test_the_report_equals_the_hand_computed_answers():
    """Catches any formula in classification_report drifting from its textbook definition."""
    report = classification_report(known.PROBABILITIES, known.LABELS, known.NAMES)
    assert_matches_the_hand_answers(report)
    assert report["labels"] == known.LABELS.tolist()
    assert report["predicted"] == [0, 0, 1, 1, 3, 2, 0, 3, 3, 5]  # the largest probability of each row
    assert report["confidence"] == pytest.approx([0.4] * 10)
    assert summary_metrics(report) == {
        "test_loss": report["loss"],
        "test_accuracy": 0.6,
        "test_top5_accuracy": 0.9,
        "test_count": 10,
    }


def test_the_known_images_and_model_give_back_the_known_probabilities():
    """Catches the CLI and page tests' fixture itself lying: the model must output PROBABILITIES."""
    images = np.stack([known.encoded_image(row) for _, row in known.SAMPLES])
    model = known.decoding_model()
    report = evaluate_model(model, images, known.LABELS, known.NAMES)
    assert_matches_the_hand_answers(report)
