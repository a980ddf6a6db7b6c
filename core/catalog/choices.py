"""The sidebar's choice lists and how a choice reads back, without Streamlit or TensorFlow.

One owner for each list the dashboard offers; the defaults themselves live in core.config.
"""

from __future__ import annotations

from core import config as cfg
from core.errors import BadInputError

SOURCE_LABELS = {
    "tfds": "Oxford-IIIT Pet (tensorflow-datasets)",
    "oxford-files": "Oxford-IIIT Pet files (images + annotations)",
    "folder": "Folder of class folders",
}
SOURCE_PATH_HELP = {
    "tfds": "Optional: a folder with a prepared tensorflow-datasets copy (empty: the workspace's).",
    "oxford-files": "The folder holding images/ (and annotations/), or the images folder itself.",
    "folder": "A folder with one sub-folder of images per class.",
}
WEIGHT_CHOICES = {"imagenet": "ImageNet (pretrained)", "none": "None (random start)"}
# Learning rates offered in the sidebar: a log grid plus the reference values.
LR_CHOICES = sorted(
    {1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, cfg.TRAIN.lr, cfg.FINETUNE.lr}
)
# What the "top N layers" field offers when core.config unfreezes all layers.
TOP_LAYERS_SUGGESTION = 20


def unfreeze_choice(unfreeze: str) -> tuple[bool, int | None]:
    """A FinetuneConfig.unfreeze value as (all layers?, number of layers or None)."""
    try:
        layers = cfg.parse_unfreeze(unfreeze)
    except BadInputError:
        layers = None  # the sidebar falls back to "all" for a value it cannot show
    return layers is None, layers
