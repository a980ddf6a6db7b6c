"""Security: models load only in Keras safe mode and nothing unpickles data PetLab did not write.

A scan of the product's source (app.py, core/, ui/, views/) follows names through imports and
aliases; its own cases prove that it catches each unsafe way of loading and lets safe ones pass.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from core.errors import BadInputError
from tests.conftest import REPO

ROOT = REPO

# -- models and pickles ----------------------------------------------------------------------

# Modules whose loading unpickles (or runs) whatever the data says: importing one at all is refused.
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "joblib", "shelve", "marshal", "cloudpickle"}
# Calls that unpickle or run code from a file, whatever their arguments.
UNSAFE_CALLS = {"torch.load", "yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all"}
# Names that are unsafe wherever they appear.
UNSAFE_NAMES = {"enable_unsafe_deserialization", "read_pickle"}
MODEL_LIBRARIES = {"keras", "tensorflow", "tf_keras"}


def product_sources() -> list[Path]:
    files = [ROOT / "app.py", *sorted((ROOT / "core").rglob("*.py")), *sorted((ROOT / "ui").rglob("*.py"))]
    return files + sorted((ROOT / "views").rglob("*.py"))


def keyword(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else "<not a constant>"
    return "<missing>"


def dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """The full dotted name an expression stands for (`n.load` -> `numpy.load`), or None."""
    attributes = []
    while isinstance(node, ast.Attribute):
        attributes.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([aliases.get(node.id, node.id), *reversed(attributes)])


def imported_names(tree: ast.AST) -> dict[str, str]:
    """{local name: full dotted name} from the imports, and from plain aliases such as `n = numpy`."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.split(".")[0]
                aliases[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    assignments = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name | ast.Attribute)
    ]
    for _ in range(3):  # aliases of aliases
        modules = {name.split(".")[0] for name in aliases.values()}
        for node in assignments:
            value = dotted(node.value, aliases)
            if value and value.split(".")[0] in modules:
                aliases.update({t.id: value for t in node.targets if isinstance(t, ast.Name)})
    return aliases


def is_model_loader(name: str | None) -> bool:
    """keras.saving.load_model, keras.models.load_model, tf.keras.models.load_model, ..."""
    return bool(name) and name.split(".")[0] in MODEL_LIBRARIES and name.endswith(".load_model")


def is_numpy_loader(name: str | None) -> bool:
    return bool(name) and name.split(".")[0] == "numpy" and name.endswith(".load")


def call_problem(call: ast.Call, name: str | None) -> str | None:
    """Why this call could unpickle or run code from a file PetLab did not write, or None."""
    if is_model_loader(name) and keyword(call, "safe_mode") is not True:
        return f"{name} without safe_mode=True"
    if is_numpy_loader(name):
        pickles = keyword(call, "allow_pickle")
        if (
            pickles not in (False, "<missing>")
            or len(call.args) > 2
            or any(k.arg is None for k in call.keywords)
        ):
            return f"{name} that may allow pickles (allow_pickle={pickles})"
    if name in UNSAFE_CALLS:
        return name
    if name in ("__import__", "importlib.import_module") and call.args:
        module = call.args[0].value if isinstance(call.args[0], ast.Constant) else "<not a constant>"
        if str(module).split(".")[0] in UNSAFE_MODULES | {"<not a constant>"}:
            return f"{name}({module!r})"
    if keyword(call, "allow_pickle") not in (False, "<missing>"):
        return f"allow_pickle={keyword(call, 'allow_pickle')}"
    if keyword(call, "safe_mode") not in (True, "<missing>"):
        return f"safe_mode={keyword(call, 'safe_mode')}"
    return None


def unsafe_calls(source: str, name: str) -> list[str]:
    """Every place in one source file that could run code from, or unpickle, data PetLab did not write.

    Names are followed through imports and aliases (`from keras.saving import load_model as lm`,
    `import numpy as n`, `loader = n.load`); a loader passed around instead of called is refused too,
    since its call cannot be checked.
    """
    tree = ast.parse(source, name)
    aliases = imported_names(tree)
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    found = []
    for node in ast.walk(tree):
        where = f"{name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            )
            found += [f"{where} imports {m}" for m in modules if m.split(".")[0] in UNSAFE_MODULES]
            found += [f"{where} imports {a.name}" for a in node.names if a.name in UNSAFE_NAMES]
        elif isinstance(node, ast.Name | ast.Attribute):
            full = dotted(node, aliases)
            if (node.id if isinstance(node, ast.Name) else node.attr) in UNSAFE_NAMES:
                found.append(f"{where} uses {full}")
            elif (is_model_loader(full) or is_numpy_loader(full)) and id(node) not in called:
                found.append(f"{where} passes {full} around instead of calling it")
        elif isinstance(node, ast.Call) and (problem := call_problem(node, dotted(node.func, aliases))):
            found.append(f"{where} {problem}")
    return found


def test_nothing_in_the_product_unpickles_or_loads_models_unsafely():
    """Catches product code that could run code or unpickle from a file a person supplied."""
    import inspect

    # A missing allow_pickle is safe only because numpy's default is False, and a missing
    # safe_mode is refused anyway (the call must say safe_mode=True).
    assert inspect.signature(np.load).parameters["allow_pickle"].default is False
    assert len(product_sources()) > 20
    problems = [
        problem
        for path in product_sources()
        for problem in unsafe_calls(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert problems == []


# One unsafe way of loading in each: the scan must find every one.
UNSAFE_SNIPPETS = [
    "import pickle",
    "from pickle import loads",
    "import joblib as jl",
    "from joblib import load",
    "import dill, os",
    "import shelve",
    "import keras\nkeras.saving.load_model('m.keras')",
    "import keras\nkeras.models.load_model('m', safe_mode=False)",
    "import keras\nkeras.saving.load_model('m', None, True, False)",
    "import keras\nkeras.saving.load_model('m', **options)",
    "import tensorflow as tf\ntf.keras.models.load_model('m')",
    "from keras.saving import load_model\nload_model(p)",
    "from keras.saving import load_model as lm\nlm(p)",
    "from keras import saving\nsaving.load_model(p)",
    "import keras.saving as ks\nks.load_model(p)",
    "import keras\nloader = keras.saving.load_model\nloader(p, safe_mode=True)",
    "import keras\nkeras.config.enable_unsafe_deserialization()",
    "from keras.config import enable_unsafe_deserialization",
    "import numpy as np\nnp.load('x.npy', allow_pickle=True)",
    "import numpy as n\nn.load(p, allow_pickle=True)",
    "import numpy\nnumpy.load(p, None, True)",
    "import numpy as np\nnp.load(p, **options)",
    "from numpy import load\nload(p, allow_pickle=True)",
    "from numpy import load as ld\nld(p, allow_pickle=flag)",
    "import numpy as np\nm = np\nm.load(p, allow_pickle=True)",
    "import numpy as np\nfunctools.partial(np.load, allow_pickle=True)",
    "import pandas as pd\npd.read_pickle(p)",
    "import torch\ntorch.load(p)",
    "import yaml\nyaml.load(text, Loader=yaml.Loader)",
    "import importlib\nimportlib.import_module('pickle')",
    "__import__('marshal')",
]
SAFE_SNIPPETS = [
    "import keras\nkeras.saving.load_model('m.keras', safe_mode=True, compile=False)",
    "from keras.saving import load_model as lm\nlm(p, safe_mode=True)",
    "from core.model.classifier import load_model\nload_model(p)",  # PetLab's safe-mode wrapper
    "import numpy as np\nnp.load(p)",
    "import numpy as n\nn.load(p, mmap_mode='r', allow_pickle=False)",
    "from numpy import load\nload(p)",
    "import json\njson.load(f)",
    "model.load_weights(p)",
]


@pytest.mark.parametrize("snippet", UNSAFE_SNIPPETS)
def test_the_source_scan_catches_each_unsafe_way_of_loading(snippet):
    """Catches the scan missing imported names, aliases and numpy / pickle variants."""
    assert unsafe_calls(snippet, "probe.py")


@pytest.mark.parametrize("snippet", SAFE_SNIPPETS)
def test_the_source_scan_lets_safe_loading_pass(snippet):
    """Catches a scan so strict that the product check could only pass by loading nothing."""
    assert unsafe_calls(snippet, "probe.py") == []


def test_a_model_with_a_lambda_layer_is_refused_with_one_sentence(tmp_path):
    import keras

    from core.model.classifier import load_model

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    path = tmp_path / "sneaky.keras"
    model.save(path)
    with pytest.raises(BadInputError) as info:
        load_model(path)
    message = str(info.value)
    assert message.startswith("sneaky.keras holds Python code (such as a Lambda layer)")
    assert str(tmp_path) not in message and "\n" not in message
