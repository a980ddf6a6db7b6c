"""Exporting a finished run's model for use outside PetLab.

Everything goes to the run's `export/` folder (core.runs.layout names every file):

- `model.keras`: a copy of the run's Keras model;
- `savedmodel/`: a TensorFlow SavedModel for TF Serving, whose `serving_default`
  signature takes `images`, float32 [batch, H, W, 3] raw 0-255 RGB, and returns
  `probabilities`, float32 [batch, classes];
- `model.tflite`: the same model for TensorFlow Lite / LiteRT, float32 (a copy of the
  run's own LiteRT copy when it has a current one: `write_lite_model`);
- `model_quantized.tflite`: dynamic-range quantized (int8 weights, float
  input and output), about a quarter of the size;
- `labels.txt`: the class names, one a line, in output order.

The model takes raw pixels (any scaling is inside it), so a consumer only has
to resize a photo to H×W; `loaded.serve(images)` works too after
tf.saved_model.load. Each artifact is built in a staging folder beside its
destination and renamed into place, so an interrupted export never leaves a
half-written file where a finished one is expected. TFLite models are converted
from a SavedModel (the route Keras's own LiteRT export takes) with TFLite
built-in operators only, so they run without TensorFlow's "Flex" ops. A run
trained under mixed precision is exported computing in float32.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from core.errors import BadInputError, NotFoundError, PetLabError
from core.model.classifier import load_model
from core.predictions.lite import lite_model_current
from core.progress import ProgressCallback, no_progress
from core.runs.layout import EXPORT_FORMATS, RunPaths
from core.runs.store import RunStore
from core.tables.runs import predictable_runs
from core.workspace import read_json

FORMATS = EXPORT_FORMATS
SERVING_INPUT = "images"
SERVING_OUTPUT = "probabilities"


def export_run(
    store: RunStore,
    run_id: int,
    fmt: str,
    quantize: bool = False,
    progress: ProgressCallback = no_progress,
) -> Path:
    """Export a finished run's model as `fmt` (keras, savedmodel or tflite); returns the model's path.

    `quantize` (tflite only) writes the dynamic-range quantized model instead of
    the float32 one. labels.txt is written beside the model every time.
    """
    fmt = _check_format(fmt, quantize)
    paths = _finished_run(store, run_id)
    class_names = [str(name) for name in read_json(paths.class_names)]
    target = paths.export_model(fmt, quantize)
    stage = f"exporting {fmt}" + (" (quantized)" if quantize else "")
    total = _STEPS[fmt] + 1
    progress(stage, 0, total)
    with _staging(paths.exports) as staging:
        artifact = staging / target.name
        _EXPORTERS[fmt](paths.model, artifact, quantize, lambda done: progress(stage, done, total))
        labels = staging / paths.export_labels.name
        labels.write_text("".join(f"{name}\n" for name in class_names), encoding="utf-8")
        _install(artifact, target)
        _install(labels, paths.export_labels)
    progress(stage, total, total)
    return target


# -- checks -------------------------------------------------------------------------------


def _check_format(fmt: str, quantize: bool) -> str:
    key = str(fmt).lower().replace("-", "").replace("_", "")
    if key not in FORMATS:
        raise BadInputError(f"Unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}.")
    if quantize and key != "tflite":
        raise BadInputError(f"--quantize applies to --format tflite only, not {key}.")
    return key


def _finished_run(store: RunStore, run_id: int) -> RunPaths:
    record = store.get(run_id)  # NotFoundError for an unknown id
    if record.status != "done":
        raise BadInputError(
            f"Run {run_id} is {record.status}; only finished runs can be exported, so wait for it "
            "or pick a run marked done."
        )
    paths = store.paths(run_id)
    for needed in (paths.model, paths.class_names):
        if not needed.is_file():
            raise NotFoundError(
                f"Run {run_id} has no {needed.name} in its folder; train it again to export it."
            )
    return paths


# -- the formats: each writes `artifact` from the run's model file ------------------------

Step = Callable[[int], None]


def _export_keras(model_file: Path, artifact: Path, quantize: bool, step: Step) -> None:
    shutil.copyfile(model_file, artifact)
    step(1)


def _export_savedmodel(model_file: Path, artifact: Path, quantize: bool, step: Step) -> None:
    model = float32_model(load_model(model_file))
    step(1)
    write_saved_model(model, artifact)
    step(2)


def _export_tflite(model_file: Path, artifact: Path, quantize: bool, step: Step) -> None:
    lite = RunPaths(model_file.parent)
    if not quantize and lite_model_current(lite):  # the float32 copy the run already left
        shutil.copyfile(lite.lite_model, artifact)
        step(3)
        return
    model = float32_model(load_model(model_file))
    step(1)
    artifact.write_bytes(tflite_bytes(model, artifact.parent, quantize))
    step(3)


def tflite_bytes(model: keras.Model, scratch: Path, quantize: bool = False) -> bytes:
    """`model` as a .tflite flatbuffer, converted through a SavedModel written under `scratch` (removed)."""
    saved_model = scratch / f"savedmodel-for-tflite-{uuid.uuid4().hex[:8]}"
    try:
        write_saved_model(model, saved_model)
        return convert_to_tflite(saved_model, quantize)
    finally:
        shutil.rmtree(saved_model, ignore_errors=True)


def write_lite_model(model: keras.Model, paths: RunPaths) -> Path:
    """Write the run's float32 LiteRT copy of `model` (core.predictions.lite) beside its model.keras.

    Call it after model.keras is written: a copy older than the model is not used.
    """
    with _staging(paths.folder) as staging:
        artifact = staging / paths.lite_model.name
        artifact.write_bytes(tflite_bytes(float32_model(model), staging))
        _install(artifact, paths.lite_model)
    return paths.lite_model


_EXPORTERS = {"keras": _export_keras, "savedmodel": _export_savedmodel, "tflite": _export_tflite}
_STEPS = {"keras": 1, "savedmodel": 2, "tflite": 3}


def float32_model(model: keras.Model) -> keras.Model:
    """`model` computing in float32 throughout, with the same weights.

    A run trained on a GPU under mixed precision computes in float16, which
    TFLite's built-in kernels reject and CPUs run slowly; its weights are float32
    anyway, so the model is rebuilt with float32 layers and the weights copied.
    """
    config = model.get_config()
    float_config = _float32_policies(config)
    if float_config == config:
        return model
    rebuilt = keras.Model.from_config(float_config)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def _float32_policies(node):
    """A copy of a Keras config with every mixed-precision dtype policy replaced by float32."""
    if isinstance(node, dict):
        if _is_mixed_policy(node):
            return {**node, "config": {**node["config"], "name": "float32"}}
        return {key: _float32_policies(value) for key, value in node.items()}
    if isinstance(node, list | tuple):
        return type(node)(_float32_policies(value) for value in node)
    return node


def _is_mixed_policy(node: dict) -> bool:
    config = node.get("config")
    return (
        node.get("class_name") == "DTypePolicy"
        and isinstance(config, dict)
        and str(config.get("name", "")).startswith("mixed_")
    )


def write_saved_model(model: keras.Model, path: Path) -> None:
    """Write `model` as a SavedModel whose serving_default maps `images` to `probabilities`.

    One traced tf.function saved from a plain tf.Module: keras.export.ExportArchive
    gives the same signature but traces the model several times and stores every
    layer's functions too (about 4x slower, twice the size, and slower to convert).
    """
    height, width = int(model.input_shape[1]), int(model.input_shape[2])
    serve = tf.function(
        lambda images: {SERVING_OUTPUT: model(images, training=False)},
        input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32, name=SERVING_INPUT)],
    )
    concrete = serve.get_concrete_function()
    module = tf.Module()
    module.serve = serve
    module.model_variables = list(concrete.variables)  # only the variables the forward pass reads
    tf.saved_model.save(module, str(path), signatures={"serving_default": concrete})


def convert_to_tflite(saved_model: Path, quantize: bool = False) -> bytes:
    """A .tflite flatbuffer from a SavedModel; `quantize` gives dynamic-range int8 weights."""
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # no representative data: dynamic range
    try:
        return converter.convert()
    except Exception as exc:  # tf.lite raises ConverterError and plain exceptions alike
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise PetLabError(
            f"TensorFlow Lite could not convert this model ({first}); "
            "export it as savedmodel or keras instead."
        ) from None


def runs_without_lite_copy(store: RunStore) -> list[int]:
    """Finished runs with a model but no current LiteRT copy (trained before runs kept one, or with
    PETLAB_LITE_COPY=0), oldest first."""
    return sorted(r.id for r in predictable_runs(store) if not lite_model_current(store.paths(r.id)))


def write_run_lite_model(store: RunStore, run_id: int) -> Path:
    """Write a finished run's LiteRT copy from its model.keras, as the run would have when it ended."""
    paths = _finished_run(store, run_id)
    path = write_lite_model(load_model(paths.model), paths)
    keras.backend.clear_session()  # the next run's conversion starts from a clean graph
    return path


# -- running a .tflite file ---------------------------------------------------------------


def tflite_interpreter(path: Path):
    """A TFLite interpreter for `path`: LiteRT's (ai-edge-litert) if installed, else TensorFlow's."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        with warnings.catch_warnings():
            # TensorFlow's interpreter still works in TF 2.21 but warns that LiteRT replaces it.
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
            return tf.lite.Interpreter(model_path=str(path))
    return Interpreter(model_path=str(path))


def tflite_probabilities(path: Path, images: np.ndarray) -> np.ndarray:
    """Run an exported .tflite model on a batch of HxWx3 raw 0-255 images; returns probabilities."""
    batch = np.asarray(images, dtype=np.float32)
    interpreter = tflite_interpreter(path)
    (source,) = interpreter.get_input_details()
    interpreter.resize_tensor_input(source["index"], list(batch.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(source["index"], batch)
    interpreter.invoke()
    (output,) = interpreter.get_output_details()
    return np.array(interpreter.get_tensor(output["index"]))


# -- atomic placement ---------------------------------------------------------------------


@contextmanager
def _staging(folder: Path) -> Iterator[Path]:
    """A temporary folder inside `folder` (same file system, so renames are atomic), removed after."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder))
    except OSError as exc:
        raise _unwritable(folder, exc) from None
    try:
        yield staging
    except OSError as exc:
        raise _unwritable(folder, exc) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _install(source: Path, target: Path) -> None:
    """Rename `source` over `target`; a folder being replaced is moved aside first, then deleted."""
    if source.is_dir() and target.exists():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, old)
        os.replace(source, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(source, target)


def _unwritable(folder: Path, exc: OSError) -> PetLabError:
    return PetLabError(
        f"Could not write the export in {folder} ({exc.strerror or exc}); free disk space or check "
        "that the workspace is writable."
    )


__all__ = [
    "FORMATS",
    "SERVING_INPUT",
    "SERVING_OUTPUT",
    "convert_to_tflite",
    "export_run",
    "float32_model",
    "tflite_interpreter",
    "tflite_probabilities",
    "write_saved_model",
]
