"""The embedding cache (core.embeddings.cache): a map is computed once per feature set and settings.

Catches: t-SNE run again for features it has already mapped (counted on openTSNE itself), a map
of other features or other settings served from the cache, a cancelled map left in the cache,
and a damaged cache file that breaks the job instead of being replaced.
"""

from __future__ import annotations

import numpy as np
import openTSNE
import pytest

from core.embeddings.cache import EmbeddingCache, features_digest
from core.embeddings.projection import TsneSettings
from core.errors import RunCancelled
from tests.core.embeddings.test_projection import FEW, clusters


@pytest.fixture
def tsne_runs(monkeypatch) -> list[int]:
    """Counts every openTSNE fit (each still runs)."""
    runs: list[int] = []
    fit = openTSNE.TSNE.fit

    def counted(self, *args, **kwargs):
        runs.append(len(args[0]) if args else 0)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(openTSNE.TSNE, "fit", counted)
    return runs


def test_the_second_map_of_the_same_features_comes_from_the_cache(tmp_path, tsne_runs):
    features, _ = clusters()
    cache = EmbeddingCache(tmp_path)
    first, hit = cache.get(features, FEW)
    assert not hit and tsne_runs == [len(features)] and cache.computed == 1

    again = EmbeddingCache(tmp_path)  # another job, another process: only the files are shared
    second, hit = again.get(features.copy(), FEW)
    assert hit and np.array_equal(first, second)
    assert tsne_runs == [len(features)] and again.computed == 0
    assert len(list((tmp_path / "cache" / "embeddings").glob("*.npy"))) == 1


def test_other_features_or_settings_are_mapped_anew(tmp_path, tsne_runs):
    features, _ = clusters()
    cache = EmbeddingCache(tmp_path)
    cache.get(features, FEW)
    changed = features.copy()
    changed[3, 7] += 1.0
    assert cache.get(changed, FEW)[1] is False
    assert cache.get(features, TsneSettings(early_exaggeration_iter=30, n_iter=70))[1] is False
    assert cache.get(features[:-1], FEW)[1] is False
    assert len(tsne_runs) == 4


def test_the_digest_reads_the_content_in_chunks(monkeypatch):
    features, _ = clusters(per_cluster=50)
    whole = features_digest(features)
    monkeypatch.setattr("core.embeddings.cache.CHUNK_ROWS", 7)
    assert features_digest(features) == whole
    assert features_digest(features.reshape(len(features), 16, -1)) != whole  # the shape counts too


def test_a_cancelled_map_is_not_cached(tmp_path, tsne_runs):
    features, _ = clusters()
    cache = EmbeddingCache(tmp_path)
    with pytest.raises(RunCancelled):
        cache.get(features, FEW, should_stop=lambda: True)
    assert not cache.path(features, FEW).exists()
    assert cache.get(features, FEW)[1] is False  # computed in full this time


def test_a_damaged_cache_file_is_computed_again(tmp_path, tsne_runs):
    features, _ = clusters()
    cache = EmbeddingCache(tmp_path)
    coords, _ = cache.get(features, FEW)
    cache.path(features, FEW).write_bytes(b"not a numpy file")
    again, hit = cache.get(features, FEW)
    assert not hit and again.shape == coords.shape and len(tsne_runs) == 2
    assert cache.get(features, FEW)[1] is True  # and replaced
