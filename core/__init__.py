"""PetLab core: the transfer-learning product without a screen (`python -m core` is its command line).

Nothing in this package imports streamlit; the dashboard (app.py, views/, ui/) calls into it.
The packages fall on two sides of one line, which `tests/test_layers.py` enforces:

    TensorFlow-free: what the dashboard server needs to draw a page
        config      the reference recipe: every default, in one place
        errors      one-sentence errors a person can act on
        progress    progress callbacks for long operations
        workspace   the workspace folder and atomic file writes
        cli         the command line (each command imports what it needs when it runs)
        catalog/    what can be chosen: backbones, augmentation specs, the sidebar's lists, sweep settings
        data/       data sources, splits, image decoding and the decoded-image cache, zip import
        runs/       the run registry, run records and files, run requests, the worker process
        tables/     the tables the pages show, built from runs, reports and data sources
        figures/    every plotly figure (the dashboard's charts and the run report's)
        reports/    the self-contained HTML run report
        curation/   label-issue rankings and the person's relabel / exclude / keep marks
        embeddings/ 2-D maps of backbone features (PCA, t-SNE), cached
        predictions/ top-k answers for photos, and LiteRT's copy of a run's model (the first answers)
    ─────────────────────────────────────────────────────────────────────────────────
    TensorFlow: loaded by the training process, and by the server only for a page that needs a model
        model/      backbones from keras.applications, the reference head, augmentation layers
        training/   the worker's jobs: datasets, feature cache, head, fine-tuning, sweeps, analyses
        inference/  evaluation, prediction, Grad-CAM, export
"""

__version__ = "0.1.0"

TENSORFLOW_FREE = (
    "config",
    "errors",
    "progress",
    "workspace",
    "cli",
    "catalog",
    "data",
    "runs",
    "tables",
    "figures",
    "reports",
    "curation",
    "embeddings",
    "predictions",
)
NEEDS_TENSORFLOW = ("model", "training", "inference")
