"""Exporting a finished run: Keras copy, SavedModel for TF Serving, float and quantized TFLite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf

from core import cli
from core.catalog.backbones import get_backbone
from core.errors import BadInputError, NotFoundError
from core.inference.export import (
    FORMATS,
    SERVING_INPUT,
    SERVING_OUTPUT,
    _install,
    export_run,
    float32_model,
    tflite_probabilities,
    write_lite_model,
)
from core.model.classifier import build_model, load_model
from core.runs.store import RunStore
from tests.conftest import REPO
from tests.tiny_models import CLASS_NAMES, colour_images, save_done_run, saved_in_a_fresh_process

ROOT = REPO
SIZE = 32


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> SimpleNamespace:
    """A finished run of a tiny trained model, and its Keras predictions on a few images."""
    workspace = tmp_path_factory.mktemp("export") / "workspace"
    store = RunStore(workspace)
    # The same model whatever ran before in this process: the comparisons below are to rounding.
    model = load_model(
        saved_in_a_fresh_process(workspace.parent / "tiny.keras", "tiny_trained_model", "mobilenetv2", SIZE)
    )
    run_id = save_done_run(store, model)
    images, _ = colour_images(24, SIZE, seed=1)
    expected = np.asarray(model(images, training=False))
    return SimpleNamespace(
        store=store,
        workspace=workspace,
        id=run_id,
        paths=store.paths(run_id),
        images=images,
        expected=expected,
    )


@pytest.fixture(scope="module")
def exported(run) -> dict[str, Path]:
    """Every format exported once for the module."""
    return {
        "keras": export_run(run.store, run.id, "keras"),
        "savedmodel": export_run(run.store, run.id, "savedmodel"),
        "tflite": export_run(run.store, run.id, "tflite"),
        "quantized": export_run(run.store, run.id, "tflite", quantize=True),
    }


def test_the_tiny_model_tells_images_apart(run) -> None:
    assert len(set(run.expected.argmax(axis=1))) > 1


def test_everything_goes_to_the_runs_export_folder(run, exported) -> None:
    folder = run.paths.exports
    assert exported == {
        "keras": folder / "model.keras",
        "savedmodel": folder / "savedmodel",
        "tflite": folder / "model.tflite",
        "quantized": folder / "model_quantized.tflite",
    }
    names = sorted(path.name for path in folder.iterdir())
    assert names == ["labels.txt", "model.keras", "model.tflite", "model_quantized.tflite", "savedmodel"]


def test_labels_txt_lists_the_class_names_in_output_order(run, exported) -> None:
    assert run.paths.export_labels.read_text(encoding="utf-8").splitlines() == CLASS_NAMES


def test_keras_export_predicts_like_the_run(run, exported) -> None:
    model = load_model(exported["keras"])
    np.testing.assert_allclose(np.asarray(model(run.images, training=False)), run.expected, atol=1e-6)


def test_savedmodel_serving_signature_matches_keras(run, exported) -> None:
    loaded = tf.saved_model.load(str(exported["savedmodel"]))
    serving = loaded.signatures["serving_default"]
    (spec,) = serving.structured_input_signature[1].values()
    assert spec.name == SERVING_INPUT and spec.dtype == tf.float32
    assert spec.shape.as_list() == [None, SIZE, SIZE, 3]
    probabilities = serving(**{SERVING_INPUT: tf.constant(run.images)})[SERVING_OUTPUT].numpy()
    # The saved graph is optimised (fused ops), so it matches eager Keras to float32 rounding only.
    np.testing.assert_allclose(probabilities, run.expected, atol=1e-4)
    np.testing.assert_array_equal(probabilities.argmax(axis=1), run.expected.argmax(axis=1))
    single = loaded.serve(tf.constant(run.images[:1]))[SERVING_OUTPUT].numpy()
    np.testing.assert_allclose(single, run.expected[:1], atol=1e-4)


def test_float_tflite_agrees_with_keras(run, exported) -> None:
    probabilities = tflite_probabilities(exported["tflite"], run.images)
    assert probabilities.shape == run.expected.shape
    np.testing.assert_array_equal(probabilities.argmax(axis=1), run.expected.argmax(axis=1))
    # The converted graph folds BatchNorm into the convolutions and runs XNNPACK's kernels: it agrees
    # with eager Keras to float32 rounding of logits tens apart, which moves a probability by up to
    # ~1e-4 (1.3e-4 seen on a fresh install, 2026-12); a wrong conversion moves them by 0.1 or more.
    np.testing.assert_allclose(probabilities, run.expected, atol=1e-3)


def test_quantized_tflite_is_smaller_and_mostly_agrees(run, exported) -> None:
    assert exported["quantized"].stat().st_size < 0.5 * exported["tflite"].stat().st_size
    probabilities = tflite_probabilities(exported["quantized"], run.images)
    agreement = np.mean(probabilities.argmax(axis=1) == run.expected.argmax(axis=1))
    assert agreement >= 0.75  # about 0.9 for this random-weight network
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-3)


def test_a_mixed_precision_model_is_exported_in_float32() -> None:
    # TFLite's built-in kernels reject float16 arithmetic: a GPU-trained run must be rebuilt in float32.
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        mixed = build_model(get_backbone("mobilenetv3small"), 3, SIZE, weights=None)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    converted = float32_model(mixed)
    assert {layer.dtype_policy.name for layer in converted._flatten_layers()} == {"float32"}
    for before, after in zip(mixed.get_weights(), converted.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    assert float32_model(converted) is converted


def test_exporting_again_replaces_the_artifact_and_leaves_no_staging(run, exported) -> None:
    calls = []
    path = export_run(run.store, run.id, "keras", progress=lambda *call: calls.append(call))
    assert path == exported["keras"] and load_model(path) is not None
    assert not [p.name for p in path.parent.iterdir() if p.name.startswith(".")]
    assert calls and calls[-1][1] == calls[-1][2]  # the last report says done


def test_a_float_tflite_export_copies_the_runs_current_lite_copy(run, exported, monkeypatch) -> None:
    import core.inference.export as export

    write_lite_model(load_model(run.paths.model), run.paths)
    try:
        monkeypatch.setattr(export, "load_model", lambda path: pytest.fail("converted again"))
        path = export_run(run.store, run.id, "tflite")
        assert path.read_bytes() == run.paths.lite_model.read_bytes()
        later = run.paths.lite_model.stat().st_mtime_ns + 1_000_000_000
        os.utime(run.paths.model, ns=(later, later))  # a copy older than the model is not used
        with pytest.raises(pytest.fail.Exception, match="converted again"):
            export_run(run.store, run.id, "tflite")
    finally:
        run.paths.lite_model.unlink()  # the module's run as the other tests expect it


def test_a_folder_artifact_is_swapped_whole(tmp_path) -> None:
    target, fresh = tmp_path / "savedmodel", tmp_path / "staging" / "savedmodel"
    (target / "variables").mkdir(parents=True)
    (target / "old.pb").write_text("old")
    fresh.mkdir(parents=True)
    (fresh / "saved_model.pb").write_text("new")
    _install(fresh, target)
    assert sorted(p.name for p in target.iterdir()) == ["saved_model.pb"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["savedmodel", "staging"]


def test_unknown_run_unfinished_run_and_bad_format_are_refused(run) -> None:
    with pytest.raises(NotFoundError, match="Run 999 does not exist"):
        export_run(run.store, 999, "keras")
    queued = run.store.create("head", {"train": {"backbone": "mobilenetv2"}})
    with pytest.raises(BadInputError, match=f"Run {queued} is queued"):
        export_run(run.store, queued, "keras")
    with pytest.raises(BadInputError, match="Unknown export format 'onnx'"):
        export_run(run.store, run.id, "onnx")
    with pytest.raises(BadInputError, match="--quantize applies to --format tflite only"):
        export_run(run.store, run.id, "savedmodel", quantize=True)


def test_cli_export_writes_and_prints_the_paths(run) -> None:
    env = os.environ | {"PETLAB_WORKSPACE": str(run.workspace)}
    result = subprocess.run(
        [sys.executable, "-m", "core", "export", "--run", str(run.id), "--format", "keras"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.strip().splitlines())
    assert Path(lines["model"]) == run.paths.export_model("keras") and Path(lines["model"]).is_file()
    assert Path(lines["labels"]).read_text(encoding="utf-8").splitlines() == CLASS_NAMES


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--run", "999", "--format", "keras"], "Run 999 does not exist"),
        (["--run", "{queued}", "--format", "tflite"], "is queued; only finished runs"),
        (["--run", "{done}", "--format", "keras", "--quantize"], "--quantize applies to --format tflite"),
    ],
)
def test_cli_errors_are_one_line_and_exit_2(run, capsys, args, message) -> None:
    queued = run.store.create("head", {"train": {"backbone": "mobilenetv2"}})
    args = [arg.format(queued=queued, done=run.id) for arg in args]
    code = cli.main(["export", *args, "--workspace", str(run.workspace)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_BAD_INPUT
    assert message in err and len(err.strip().splitlines()) == 1


def test_cli_lite_copy_writes_each_missing_copy_once(run, capsys) -> None:
    from core.predictions.lite import lite_model_current

    queued = run.store.create("head", {"train": {"backbone": "mobilenetv2"}})  # no model: never copied
    workspace = ["--workspace", str(run.workspace)]
    try:
        assert cli.main(["lite-copy", *workspace]) == cli.EXIT_OK
        lines = capsys.readouterr().out.splitlines()
        assert lines[0] == f"run {run.id}: converting its model for LiteRT…" and len(lines) == 2
        assert lines[1].startswith(f"run {run.id}: {run.paths.lite_model} (")
        assert lite_model_current(run.paths)
        assert np.allclose(tflite_probabilities(run.paths.lite_model, run.images), run.expected, atol=1e-3)
        assert cli.main(["lite-copy", *workspace]) == cli.EXIT_OK
        assert capsys.readouterr().out.strip() == "Every finished run has its LiteRT copy."
        assert cli.main(["lite-copy", "--run", str(queued), *workspace]) == cli.EXIT_BAD_INPUT
        assert f"Run {queued} is queued" in capsys.readouterr().err
    finally:
        run.paths.lite_model.unlink(missing_ok=True)  # the module's run as the other tests expect it


def test_cli_rejects_an_unknown_format(run, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["export", "--run", str(run.id), "--format", "onnx", "--workspace", str(run.workspace)])
    assert exit_info.value.code == cli.EXIT_BAD_INPUT
    assert "invalid choice: 'onnx'" in capsys.readouterr().err


def test_cli_offers_exactly_the_export_formats() -> None:
    assert cli.EXPORT_FORMATS == FORMATS
