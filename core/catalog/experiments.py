"""What experiments on cached features accept: the settings a sweep varies, and which augmentations cache.

A sweep trains one head per setting, a setting being overrides of the head-training config
(SWEEPABLE: learning rate, dropout, label smoothing, batch size, epochs). `grid` and
`random_draws` make the list, `check_settings` types and checks one given by hand. Plain Python
(numpy), no TensorFlow: the dashboard counts and checks a sweep's settings before queuing it,
and the worker (core.training.sweep) trains them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from core.catalog.augmentations import is_flip_only, parse_spec
from core.errors import BadInputError

Settings = dict[str, float | int]
# What a sweep can vary, with each value's type and the rule it must follow.
SWEEPABLE: dict[str, tuple[type, Callable[[float], bool], str]] = {
    "lr": (float, lambda v: 0 < v < math.inf, "above 0"),
    "dropout": (float, lambda v: 0 <= v < 1, "from 0 up to (not including) 1"),
    "label_smoothing": (float, lambda v: 0 <= v < 1, "from 0 up to (not including) 1"),
    "batch_size": (int, lambda v: v >= 1, "a whole number of at least 1"),
    "epochs": (int, lambda v: v >= 1, "a whole number of at least 1"),
}
MAX_MEMBERS = 100


def cacheable(augment: str) -> bool:
    """Whether every view an augmentation can produce can be cached: none, or the reference flip."""
    return is_flip_only(augment) or not parse_spec(augment)


def grid(values_by_name: Mapping[str, Sequence[float]]) -> list[Settings]:
    """Every combination of the values given per name, in order (the last name varies fastest)."""
    names = list(values_by_name)
    _check_names(values_by_name)
    _check_count(math.prod(len(values_by_name[name]) for name in names))  # before building a huge grid
    combos = itertools.product(*(values_by_name[name] for name in names))
    return check_settings([dict(zip(names, combo, strict=True)) for combo in combos])


def random_draws(
    ranges: Mapping[str, tuple[float, float] | Sequence[float]], n: int, seed: int
) -> list[Settings]:
    """`n` settings drawn from `ranges`: a (low, high) tuple is a range, a list a choice among its values.

    Learning rates are drawn evenly on a log scale, whole-number settings as whole numbers, the
    rest evenly between low and high.
    """
    rng = np.random.default_rng(seed)

    def draw(name: str, spec) -> float | int:
        if not isinstance(spec, tuple):
            return spec[int(rng.integers(len(spec)))]
        low, high = sorted(spec)
        if SWEEPABLE[name][0] is int:
            return int(rng.integers(int(low), int(high) + 1))
        if name == "lr" and low > 0:
            return float(math.exp(rng.uniform(math.log(low), math.log(high))))
        return float(rng.uniform(low, high))

    _check_names(ranges)
    _check_count(n)
    return check_settings([{name: draw(name, spec) for name, spec in ranges.items()} for _ in range(n)])


def check_settings(settings: list[Settings]) -> list[Settings]:
    """The settings with their values typed; BadInputError for an unknown name or a value out of range."""
    _check_count(len(settings))
    for setting in settings:
        _check_names(setting)
    return [{name: _typed(name, value) for name, value in setting.items()} for setting in settings]


def _typed(name: str, value: object) -> float | int:
    """`value` as the type setting `name` takes; BadInputError when it breaks the setting's rule."""
    kind, ok, rule = SWEEPABLE[name]
    try:
        typed = kind(value)
        fits = ok(typed) and (kind is float or float(value) == typed)  # 32.5 is no batch size
    except (TypeError, ValueError, OverflowError):
        fits = False
    if not fits:
        raise BadInputError(f"The sweep's {describe_name(name)} must be {rule}, not {value!r}.")
    return typed


def _check_count(count: int) -> None:
    if not 1 <= count <= MAX_MEMBERS:
        raise BadInputError(f"A sweep trains 1 to {MAX_MEMBERS} settings, not {count}; change the values.")


def _check_names(settings: Mapping[str, object]) -> None:
    unknown = sorted(set(settings) - set(SWEEPABLE))
    if unknown:
        raise BadInputError(f"A sweep cannot vary {', '.join(unknown)}; it varies {', '.join(SWEEPABLE)}.")


def describe_name(name: str) -> str:
    """A setting's name as a sentence spells it."""
    return "learning rate" if name == "lr" else name.replace("_", " ")


def describe(settings: Settings) -> str:
    """A setting as a person reads it: "lr 0.001, dropout 0.2"."""
    return ", ".join(f"{name.replace('_', ' ')} {value:g}" for name, value in settings.items()) or "reference"


# What the dashboard's sweep form offers per setting (the sidebar's own value is added to each).
SWEEP_CHOICES: dict[str, list[float]] = {
    "dropout": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5],
    "label_smoothing": [0.0, 0.05, 0.1, 0.2],
    "batch_size": [8, 16, 32, 64, 128],
    "epochs": [5, 10, 15, 25, 50],
}
# The random draws' ranges the form starts from, per setting drawn from a range.
SWEEP_RANGES: dict[str, tuple[float, float]] = {
    "dropout": (0.1, 0.5),
    "label_smoothing": (0.0, 0.2),
    "epochs": (10, 25),
}


def nearest_on_log_scale(value: float, choices: Sequence[float]) -> float:
    """The choice closest to `value` on a log scale (learning rates: 2.4e-3 is nearest 3e-3, not 1e-3)."""
    return min(choices, key=lambda choice: abs(math.log(choice) - math.log(value)))


def count_settings(values_by_name: Mapping[str, Sequence[float]]) -> int:
    """How many heads a grid of these values trains (a name with no values keeps the base value)."""
    return math.prod(max(1, len(values)) for values in values_by_name.values())
