"""The reference recipe pinned to the published tutorial's numbers, written here by hand.

Catches: a default in core/config.py drifting from the recipe PetLab must reproduce and beat
(the sidebar and CLI tests only check that they read core/config.py, not what it says).
"""

from __future__ import annotations

from core import config as cfg
from core.catalog.backbones import default_image_size


def test_head_training_is_the_published_recipe():
    t = cfg.TRAIN
    assert (t.backbone, t.weights, default_image_size(t.backbone, t.image_size)) == (
        "resnet50v2",
        "imagenet",
        224,
    )
    assert (t.lr, t.batch_size, t.epochs, t.patience) == (1e-3, 32, 25, 5)
    assert (t.dropout, t.augment) == (0.2, "flip")


def test_fine_tuning_is_the_published_recipe():
    f = cfg.FINETUNE
    assert (f.lr, f.epochs, f.unfreeze) == (1e-5, 5, "all")


def test_the_split_is_train_90_validation_10_and_the_official_test():
    assert cfg.DATA.source == "tfds" and cfg.DATA.validation_fraction == 0.1
    assert cfg.SPLITS == ("train", "validation", "test")
