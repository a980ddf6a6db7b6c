"""The catalogue (core.catalog): backbones, augmentation specs and the sidebar's lists, without TensorFlow.

Catches: a backbone name that no longer resolves, a default image size computed differently from
the backbone's native size, a spec the trainer would read otherwise than the sidebar shows, an
unfreeze value the sidebar shows differently from what fine-tuning does.
"""

from __future__ import annotations

import pytest

from core import config as cfg
from core.catalog.augmentations import format_spec, is_flip_only, parse_spec
from core.catalog.backbones import BACKBONES, default_image_size, get_backbone
from core.catalog.choices import LR_CHOICES, SOURCE_LABELS, SOURCE_PATH_HELP, unfreeze_choice
from core.errors import BadInputError


def test_backbones_are_found_by_forgiving_names():
    assert get_backbone("ResNet50V2").name == "resnet50v2"
    assert get_backbone("mobilenet_v3-small").name == "mobilenetv3small"
    with pytest.raises(BadInputError, match="choose one of"):
        get_backbone("vgg16")


def test_the_catalogue_holds_six_backbones_with_the_input_range_each_expects():
    ranges = {name: b.input_range for name, b in BACKBONES.items()}
    assert ranges == {
        "resnet50v2": (-1.0, 1.0),
        "mobilenetv2": (-1.0, 1.0),
        "mobilenetv3small": (0.0, 255.0),
        "mobilenetv3large": (0.0, 255.0),
        "efficientnetv2b0": (0.0, 255.0),
        "convnexttiny": (0.0, 255.0),
    }


def test_the_default_image_size_is_the_backbones_own_unless_one_is_asked_for():
    assert default_image_size("resnet50v2") == 224
    assert default_image_size("resnet50v2", None) == 224
    assert default_image_size("mobilenetv2", 96) == 96


def test_augmentation_specs_round_trip_and_the_reference_is_flip_only():
    parsed = parse_spec("flip, rotation=0.2 ,zoom")
    assert parsed == {"flip": "horizontal", "rotation": 0.2, "zoom": 0.1}
    assert parse_spec(format_spec(parsed)) == parsed
    assert is_flip_only(cfg.TRAIN.augment) and not is_flip_only("flip,zoom") and not is_flip_only("none")
    with pytest.raises(BadInputError):
        parse_spec("rotation=0.9")


@pytest.mark.parametrize(
    ("value", "shown", "parsed"),
    [("all", (True, None), None), ("ALL", (True, None), None), ("12", (False, 12), 12)],
)
def test_unfreeze_reads_the_same_in_the_sidebar_and_in_fine_tuning(value, shown, parsed):
    assert unfreeze_choice(value) == shown
    assert cfg.parse_unfreeze(value) == parsed


@pytest.mark.parametrize("value", ["0", "-3", "top", "1.5", ""])
def test_a_bad_unfreeze_is_refused_by_fine_tuning_and_shown_as_all(value):
    with pytest.raises(BadInputError):
        cfg.parse_unfreeze(value)
    assert unfreeze_choice(value) == (True, None)


def test_the_sidebar_lists_cover_every_source_and_the_recipe_rates():
    assert set(SOURCE_LABELS) == set(SOURCE_PATH_HELP) == set(cfg.SOURCES)
    assert {cfg.TRAIN.lr, cfg.FINETUNE.lr} <= set(LR_CHOICES) and sorted(LR_CHOICES) == LR_CHOICES
