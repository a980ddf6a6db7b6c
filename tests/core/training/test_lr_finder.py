"""The learning-rate finder: where it suggests, when it stops, and that its suggestion trains well.

Known curves check `suggest` against answers worked out by hand; a real finder on generated
images a head can learn (tests.tiny_models.striped_experiment) checks the whole pass.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.runs.store import RunStore
from core.training.lr_finder import DIVERGENCE, START_LR, STEPS, find_lr, suggest
from core.training.sweep import SweepHooks, run_sweep
from tests.tiny_models import striped_features

LOG_LRS = np.linspace(-7, 1, 100)  # log10 of the rates a default pass tries


def falling_curve(steepest: float) -> np.ndarray:
    """A loss falling from 2 to 0.4, fastest at log10(lr) = `steepest`, exploding past its lowest point."""
    loss = 1.2 - 0.8 * np.tanh(1.5 * (LOG_LRS - steepest))
    return loss + np.where(LOG_LRS > -0.5, np.expm1(4 * (LOG_LRS + 0.5)), 0.0)


@pytest.mark.parametrize("steepest", [-4.0, -2.5, -1.5])
def test_suggest_is_where_a_known_curve_falls_fastest(steepest) -> None:
    """Catches a suggestion at the lowest loss, in the explosion, or off by the stretch's width."""
    suggestion = suggest(list(10**LOG_LRS), list(falling_curve(steepest)))
    assert suggestion is not None
    assert math.log10(suggestion) == pytest.approx(steepest, abs=0.1)  # 0.08 decades between points


def test_suggest_ignores_noise_narrower_than_the_fall() -> None:
    rng = np.random.default_rng(0)
    noisy = falling_curve(-2.5) + rng.normal(0, 0.03, len(LOG_LRS))
    assert math.log10(suggest(list(10**LOG_LRS), list(noisy))) == pytest.approx(-2.5, abs=0.25)


@pytest.mark.parametrize(
    "losses",
    [
        np.full(100, 1.1),  # flat: nothing learned at any rate
        1.1 + 0.01 * np.sin(LOG_LRS * 7),  # flat but wavy: no real fall
        np.linspace(1.0, 3.0, 100),  # only rising
        np.linspace(2.0, 1.0, 12),  # too short to measure a fall over half a decade
    ],
    ids=["flat", "wavy", "rising", "short"],
)
def test_suggest_gives_nothing_for_a_curve_that_does_not_fall(losses) -> None:
    lrs = list(10 ** np.linspace(-7, 1, len(losses)))
    assert suggest(lrs, list(losses)) is None


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    return striped_features(tmp_path_factory.getbasetemp() / "striped-experiment")


@pytest.fixture(scope="module")
def curve(features):
    return find_lr(features)


def steepest_half_decade(lrs: list[float], losses: list[float]) -> tuple[float, float]:
    """By hand: the (low, high) learning rates of the half decade over which the loss drops the most."""
    best, found = -math.inf, (math.nan, math.nan)
    for i, low in enumerate(lrs):
        for j in range(i + 1, len(lrs)):
            if math.log10(lrs[j] / low) >= 0.5:
                if losses[i] - losses[j] > best:
                    best, found = losses[i] - losses[j], (low, lrs[j])
                break
    return found


def test_the_finder_suggests_where_its_loss_falls_fastest(curve) -> None:
    """Catches a suggestion off the recorded curve's steepest fall, or where the loss is no lower."""
    lrs, losses = curve.lrs, curve.losses
    assert lrs[0] == pytest.approx(START_LR)
    ratios = np.diff(np.log10(lrs))
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-4)  # rising exponentially
    assert curve.suggestion is not None
    low, high = steepest_half_decade(lrs, losses)
    assert low <= curve.suggestion <= high
    at = lrs.index(curve.suggestion)
    assert losses[at] < losses[0] - 0.1  # the head learned something by then


def test_the_finder_stops_once_the_loss_explodes(curve) -> None:
    """Catches a finder that runs on (and plots) rates at which training has blown up."""
    assert len(curve.lrs) < STEPS
    assert curve.losses[-1] > DIVERGENCE * min(curve.losses)
    assert curve.losses[-2] <= DIVERGENCE * min(curve.losses[:-1])  # it stopped at the first such point


def test_training_at_the_suggestion_beats_a_far_smaller_rate(features, curve, tmp_path) -> None:
    """Catches a suggestion that is not a good learning rate for this head (one past the explosion, say)."""
    store = RunStore(tmp_path / "workspace")

    def new_run(config: dict) -> int:
        return store.create("head", config, status="running")

    settings = [{"lr": curve.suggestion / 100}, {"lr": curve.suggestion}]
    result = run_sweep(store, features, settings, new_run, SweepHooks())
    too_small, suggested = (member.metrics["best_val_loss"] for member in result.members)
    assert suggested < too_small - 0.05
