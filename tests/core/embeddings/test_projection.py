"""Features to 2-D (core.embeddings.projection): PCA, then openTSNE, with progress and cancel.

Generated features: well-separated clusters in many dimensions. Catches: a map that mixes the
clusters (broken PCA or t-SNE, rows out of order), progress that does not add up across
openTSNE's two phases, a cancel that is ignored, a tiny split that crashes t-SNE, and settings
that are not the library's own defaults unless asked.
"""

from __future__ import annotations

import numpy as np
import openTSNE
import pytest

from core.embeddings import projection
from core.embeddings.projection import (
    MIN_TSNE_POINTS,
    PCA,
    TSNE,
    TSNE_STAGE,
    TsneSettings,
    method_for,
    project,
)
from core.errors import BadInputError, RunCancelled

FEW = TsneSettings(early_exaggeration_iter=30, n_iter=60)  # enough to separate clear clusters, quickly


def clusters(
    per_cluster: int = 30, k: int = 4, dims: int = 256, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(float32 features, labels): k well-apart Gaussian clusters, rows shuffled."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 4.0, (k, dims))
    labels = rng.permutation(np.repeat(np.arange(k), per_cluster))
    features = centres[labels] + rng.normal(0.0, 1.0, (len(labels), dims))
    return features.astype(np.float32), labels


def neighbour_agreement(coords: np.ndarray, labels: np.ndarray) -> float:
    """The share of points whose nearest other point in 2-D has the same label."""
    distances = np.linalg.norm(coords[:, None, :] - coords[None, :, :], axis=-1)
    np.fill_diagonal(distances, np.inf)
    return float(np.mean(labels[distances.argmin(axis=1)] == labels))


def test_separated_clusters_stay_separated_in_two_dimensions():
    features, labels = clusters()
    coords = project(features, FEW)
    assert coords.shape == (len(features), 2) and coords.dtype == np.float32
    assert neighbour_agreement(coords, labels) >= 0.95
    # Control: the same coordinates with the rows' labels shuffled do not agree.
    assert neighbour_agreement(coords, np.random.default_rng(1).permutation(labels)) < 0.6


def test_progress_counts_iterations_across_both_phases():
    seen: list[tuple[str, int, int | None]] = []
    project(clusters()[0], FEW, progress=lambda stage, done, total: seen.append((stage, done, total)))
    iterations = [(done, total) for stage, done, total in seen if stage == TSNE_STAGE]
    total = FEW.early_exaggeration_iter + FEW.n_iter
    assert {t for _, t in iterations} == {total}
    done = [d for d, _ in iterations]
    assert done == sorted(done) and done[-1] == total
    assert len(set(done)) >= total // projection.CALLBACK_EVERY  # reported through both phases
    assert any(d > FEW.early_exaggeration_iter for d in done[:-1])  # the second phase counts on


def test_a_stop_request_cancels_the_map():
    calls = []

    def stop() -> bool:
        calls.append(1)
        return True

    with pytest.raises(RunCancelled):
        project(clusters()[0], FEW, should_stop=stop)
    assert len(calls) == 1  # asked at the first callback, and openTSNE stopped there


def test_a_tiny_split_is_mapped_by_pca_alone(monkeypatch):
    def no_tsne(*args, **kwargs):
        raise AssertionError("t-SNE must not run on so few points")

    monkeypatch.setattr(openTSNE.TSNE, "fit", no_tsne)
    features, _ = clusters(per_cluster=2, k=2)
    assert method_for(len(features)) == PCA and method_for(MIN_TSNE_POINTS) == TSNE
    coords = project(features)
    assert coords.shape == (4, 2) and np.isfinite(coords).all()
    assert project(features[:1]).tolist() == [[0.0, 0.0]]


def test_an_empty_split_is_refused():
    with pytest.raises(BadInputError, match="no images"):
        project(np.zeros((0, 8), np.float32))


def test_default_settings_are_the_library_defaults():
    """Only the tests ask for fewer iterations; a job without options gets openTSNE's own settings."""
    described = TsneSettings().describe()
    library = openTSNE.TSNE()
    assert (described["perplexity"], described["early_exaggeration_iter"], described["n_iter"]) == (
        library.perplexity,
        library.early_exaggeration_iter,
        library.n_iter,
    )
    assert TsneSettings.from_options({"split": "train"}) == TsneSettings()
    assert TsneSettings.from_options({"n_iter": 40}).describe()["n_iter"] == 40


def test_bad_settings_are_refused():
    with pytest.raises(BadInputError):
        TsneSettings.from_options({"n_iter": 0})
