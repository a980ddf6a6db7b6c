"""The embedding map: a run's backbone features projected to 2-D (PCA, then t-SNE), cached per
feature set, and the tables the map page draws from.

    projection  features → PCA (≤ 50 dimensions) → openTSNE, with progress and cancel
    cache       maps per (features content, t-SNE settings) in <workspace>/cache/embeddings/
    maps        an embedding job's map file, its table of points, chart selections, the job a page shows
    photos      a map point's photo (thumbnails for hover, the page's photos)

The worker's job is core.training.embedding_job; the figure core.figures.embedding.
"""
