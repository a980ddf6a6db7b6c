"""Ten test predictions over six breeds, with every evaluation number worked out by hand.

The same truth is checked three ways: core.inference.evaluate.classification_report on the
arrays below (tests/core/inference/test_evaluate.py), `python -m core evaluate` on a run whose
model outputs exactly these probabilities (tests/core/test_cli.py), and the Evaluation page
after its Evaluate button (tests/views/test_evaluation.py).

Each row of probabilities is a permutation of 0.40, 0.24, 0.16, 0.12, 0.06, 0.02, so the
rank of the true breed can be read off by eye. The confusion matrix is not symmetric and
precision differs from recall for most breeds, so a transposed matrix or swapped
precision / recall cannot pass; sample 9 has its true breed exactly 5th (inside the top 5)
and sample 5 has it 6th (outside), so an off-by-one top-k cannot pass either.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# The order a folder source gives class folders (sorted: capitals first).
NAMES = ["Abyssinian", "Bengal", "Persian", "beagle", "boxer", "pug"]

# (true breed index, probabilities in NAMES order); comments: predicted breed, rank of the true one.
SAMPLES = [
    (0, [0.40, 0.24, 0.16, 0.12, 0.06, 0.02]),  # 1: Abyssinian, right
    (0, [0.40, 0.02, 0.06, 0.12, 0.16, 0.24]),  # 2: Abyssinian, right
    (0, [0.24, 0.40, 0.16, 0.12, 0.06, 0.02]),  # 3: Bengal; true 2nd
    (1, [0.12, 0.40, 0.24, 0.16, 0.02, 0.06]),  # 4: Bengal, right
    (1, [0.24, 0.02, 0.16, 0.40, 0.12, 0.06]),  # 5: beagle; true 6th: the only top-5 miss
    (2, [0.06, 0.12, 0.40, 0.24, 0.16, 0.02]),  # 6: Persian, right
    (2, [0.40, 0.24, 0.16, 0.02, 0.06, 0.12]),  # 7: Abyssinian; true 3rd
    (3, [0.02, 0.06, 0.12, 0.40, 0.24, 0.16]),  # 8: beagle, right
    (4, [0.24, 0.16, 0.12, 0.40, 0.06, 0.02]),  # 9: beagle; true 5th, still in the top 5
    (5, [0.16, 0.12, 0.06, 0.02, 0.24, 0.40]),  # 10: pug, right
]
LABELS = np.array([label for label, _ in SAMPLES])
PROBABILITIES = np.array([row for _, row in SAMPLES], dtype=np.float32)

# Worked out by hand from the comments above.
ACCURACY = 0.6  # 6 of 10 right
TOP5_ACCURACY = 0.9  # all but sample 5
# Mean of -ln(probability of the true breed): 0.40 six times, then 0.24, 0.02, 0.16 and 0.06.
LOSS = -(6 * math.log(0.40) + math.log(0.24) + math.log(0.02) + math.log(0.16) + math.log(0.06)) / 10
CONFUSION = [  # rows: true breed, columns: predicted breed, both in NAMES order
    [2, 1, 0, 0, 0, 0],
    [0, 1, 0, 1, 0, 0],
    [1, 0, 1, 0, 0, 0],
    [0, 0, 0, 1, 0, 0],
    [0, 0, 0, 1, 0, 0],
    [0, 0, 0, 0, 0, 1],
]
# breed: (precision, recall, F1, support). Precision: right / predicted as the breed (a column);
# recall: right / images of the breed (a row); boxer is never predicted, so its precision is 0.
PER_CLASS = {
    "Abyssinian": (2 / 3, 2 / 3, 2 / 3, 3),
    "Bengal": (1 / 2, 1 / 2, 1 / 2, 2),
    "Persian": (1.0, 1 / 2, 2 / 3, 2),
    "beagle": (1 / 3, 1.0, 1 / 2, 1),
    "boxer": (0.0, 0.0, 0.0, 1),
    "pug": (1.0, 1.0, 1.0, 1),
}
# The off-diagonal cells, most images first, then by share of the true breed, then by name.
CONFUSED_PAIRS = ["boxer → beagle", "Bengal → beagle", "Persian → Abyssinian", "Abyssinian → Bengal"]


def assert_matches_the_hand_answers(report: dict) -> None:
    """Every number of a report on the known samples equals the one worked out by hand."""
    assert report["count"] == len(SAMPLES)
    assert report["accuracy"] == pytest.approx(ACCURACY)
    assert report["top5_accuracy"] == pytest.approx(TOP5_ACCURACY)
    assert report["loss"] == pytest.approx(LOSS, rel=1e-5)
    assert report["class_names"] == NAMES
    assert report["confusion_matrix"] == CONFUSION
    by_breed = {row["class"]: row for row in report["per_class"]}
    assert list(by_breed) == NAMES
    for breed, (precision, recall, f1, support) in PER_CLASS.items():
        row = by_breed[breed]
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((precision, recall, f1)), breed
        assert row["support"] == support, breed


# -- a run whose model outputs exactly PROBABILITIES ----------------------------------------------

SIZE = 32  # pixels; the images are stored at this size, so loading them never resizes
SCALE = 250  # a probability p is stored as the pixel value p * SCALE (0.40 -> 100, 0.02 -> 5)


def encoded_image(probabilities) -> np.ndarray:
    """A black SIZE×SIZE RGB image whose first six values (row 0, pixels 0-1) hold the probabilities."""
    pixels = np.zeros(SIZE * SIZE * 3, dtype=np.uint8)
    pixels[: len(probabilities)] = np.rint(np.asarray(probabilities) * SCALE).astype(np.uint8)
    return pixels.reshape(SIZE, SIZE, 3)


def write_images(root: Path) -> Path:
    """`root/<breed>/sample_NN.png` for every sample (PNG: lossless, so the pixels stay exact)."""
    for number, (label, row) in enumerate(SAMPLES, start=1):
        path = root / NAMES[label] / f"sample_{number:02d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(encoded_image(row)).save(path)
    return root


def decoding_model():
    """A Keras model (plain Flatten and Dense, so safe mode loads it) that reads the probabilities back."""
    import keras

    inputs = keras.Input((SIZE, SIZE, 3))
    outputs = keras.layers.Dense(len(NAMES), use_bias=False, name="read_probabilities")(
        keras.layers.Flatten()(inputs)
    )
    model = keras.Model(inputs, outputs, name="petlab_known_answers")
    kernel = np.zeros((SIZE * SIZE * 3, len(NAMES)), dtype=np.float32)
    kernel[np.arange(len(NAMES)), np.arange(len(NAMES))] = 1.0 / SCALE
    model.get_layer("read_probabilities").set_weights([kernel])
    return model


def write_known_run(workspace: Path, data_root: Path) -> int:
    """Register a finished head run on `data_root`'s images whose model outputs PROBABILITIES.

    Every image goes to the test split (test fraction 0.99 rounds up to the whole class, and
    no validation), in NAMES order, so the report's labels are LABELS.
    """
    from core.runs.store import RunStore
    from core.workspace import atomic_write_json

    write_images(data_root)
    data = {"source": "folder", "path": str(data_root), "test_fraction": 0.99, "validation_fraction": 0.0}
    config = {"data": data, "train": {"backbone": "mobilenetv3small", "weights": "none", "image_size": SIZE}}
    store = RunStore(workspace)
    run_id = store.create("head", config, status="done")
    paths = store.paths(run_id)
    paths.create()
    decoding_model().save(paths.model)
    atomic_write_json(paths.class_names, NAMES)
    store.close()
    return run_id
