"""Backbone features to 2-D: PCA to at most 50 dimensions, then t-SNE (openTSNE).

PCA first (scikit-learn) keeps the directions that carry the features' variance and makes the
t-SNE's neighbour search fast; openTSNE then places the points with its own defaults
(perplexity 30, 250 early-exaggeration and 500 more iterations, FFT gradients), seeded, so the
same features give the same map. `TsneSettings` overrides those defaults only when asked (the
tests use few iterations). openTSNE calls back every CALLBACK_EVERY iterations: each call
reports the iterations done across both of its phases and asks `should_stop`, so a cancel takes
effect within a few iterations. Fewer than MIN_TSNE_POINTS points (a tiny split) are mapped by
their first two principal components: t-SNE needs neighbours to work with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from core.errors import BadInputError, RunCancelled
from core.progress import ProgressCallback, no_progress

PCA_DIMENSIONS = 50
MIN_TSNE_POINTS = 10
CALLBACK_EVERY = 10  # iterations between progress reports and cancel checks
N_JOBS = 1  # openTSNE's default: on 2 busy cores, threads made a map 1.3-3x slower (measured)
SEED = 0
PCA_STAGE = "reducing the features to 50 dimensions (PCA)"
NEIGHBOURS_STAGE = "finding each image's nearest neighbours"
TSNE_STAGE = "arranging the map (t-SNE iterations)"
TSNE, PCA = "t-SNE", "PCA"  # the methods a map can be made with
CANCELLED = "The map was cancelled before it was finished; compute it again to see it."


@dataclass(frozen=True)
class TsneSettings:
    """openTSNE settings; None keeps the library's own default."""

    perplexity: float | None = None
    early_exaggeration_iter: int | None = None
    n_iter: int | None = None
    seed: int = SEED

    @classmethod
    def from_options(cls, options: dict) -> TsneSettings:
        """The settings an embedding job's options ask for (keys as the fields; all optional)."""
        fields = {name: options[name] for name in asdict(cls()) if options.get(name) is not None}
        settings = cls(**fields)
        if any(v is not None and v <= 0 for v in (settings.perplexity, settings.n_iter)):
            raise BadInputError("The t-SNE perplexity and iterations must be positive.")
        return settings

    def tsne(self, callbacks: list | None = None):
        """An openTSNE.TSNE with these settings (the rest: its defaults), seeded, reporting to `callbacks`."""
        from openTSNE import TSNE as OpenTsne

        given = {k: v for k, v in asdict(self).items() if k != "seed" and v is not None}
        return OpenTsne(
            random_state=self.seed,
            n_jobs=N_JOBS,
            callbacks=callbacks,
            callbacks_every_iters=CALLBACK_EVERY,
            **given,
        )

    def describe(self) -> dict:
        """The settings in effect (the library's defaults filled in), for a cache key."""
        import openTSNE

        tsne = self.tsne()
        return {
            "perplexity": tsne.perplexity,
            "early_exaggeration_iter": tsne.early_exaggeration_iter,
            "n_iter": tsne.n_iter,
            "seed": self.seed,
            "openTSNE": openTSNE.__version__,
        }


DEFAULT_SETTINGS = TsneSettings()  # openTSNE's own defaults, seeded


def method_for(points: int) -> str:
    """How a map of `points` points is made: t-SNE, or PCA alone for very few."""
    return TSNE if points >= MIN_TSNE_POINTS else PCA


def project(
    features: np.ndarray,
    settings: TsneSettings = DEFAULT_SETTINGS,
    progress: ProgressCallback = no_progress,
    should_stop: Callable[[], bool] = lambda: False,
) -> np.ndarray:
    """float32 [N, 2] map coordinates of features [N, ...]; RunCancelled when `should_stop` said so."""
    if len(features) == 0:
        raise BadInputError("There are no images to map in this split; choose another split.")
    features = np.asarray(features, np.float32).reshape(len(features), -1)
    progress(PCA_STAGE, 0, 1)
    reduced = reduce_dimensions(features, PCA_DIMENSIONS, settings.seed)
    progress(PCA_STAGE, 1, 1)
    if method_for(len(features)) == PCA:
        return first_two(reduced)
    return run_tsne(reduced, settings, progress, should_stop)


def reduce_dimensions(features: np.ndarray, dimensions: int, seed: int) -> np.ndarray:
    """The features' first `dimensions` principal components (fewer when the data has fewer)."""
    from sklearn.decomposition import PCA as Pca

    components = min(dimensions, *features.shape)
    if len(features) < 2:
        return np.zeros((len(features), 1), np.float32)
    return Pca(n_components=components, random_state=seed).fit_transform(features).astype(np.float32)


def first_two(reduced: np.ndarray) -> np.ndarray:
    """The first two columns, padded with zeros when there are fewer."""
    coords = np.zeros((len(reduced), 2), np.float32)
    width = min(2, reduced.shape[1])
    coords[:, :width] = reduced[:, :width]
    return coords


def run_tsne(
    reduced: np.ndarray, settings: TsneSettings, progress: ProgressCallback, should_stop: Callable[[], bool]
) -> np.ndarray:
    """openTSNE on the PCA-reduced features, reporting iterations; RunCancelled on a stop."""
    reporter = IterationReporter(progress, should_stop)
    tsne = settings.tsne(callbacks=[reporter])
    reporter.phases = (tsne.early_exaggeration_iter, tsne.n_iter)
    progress(NEIGHBOURS_STAGE, 0, None)
    embedding = tsne.fit(reduced)
    if reporter.stopped:  # openTSNE returns the unfinished map when a callback stops it
        raise RunCancelled(CANCELLED)
    progress(TSNE_STAGE, sum(reporter.phases), sum(reporter.phases))
    return np.asarray(embedding, np.float32)


class IterationReporter:
    """An openTSNE callback: iterations done across its two phases as progress, and whether to stop.

    openTSNE counts iterations from 1 in each phase (early exaggeration, then the rest) and tells
    each callback object when a phase is about to start (`optimization_about_to_start`).
    """

    def __init__(self, progress: ProgressCallback, should_stop: Callable[[], bool]) -> None:
        self.progress, self.should_stop = progress, should_stop
        self.phases: tuple[int, int] = (0, 0)
        self.phase = -1
        self.stopped = False

    def optimization_about_to_start(self) -> None:
        self.phase += 1

    def __call__(self, iteration: int, error: float, embedding: np.ndarray) -> bool:
        total = sum(self.phases)
        before = sum(self.phases[: max(0, self.phase)])
        self.progress(TSNE_STAGE, min(total, before + iteration), total)
        self.stopped = bool(self.should_stop())
        return self.stopped
