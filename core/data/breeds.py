"""The 37 Oxford-IIIT Pet breeds and which species each one is.

The list is in the order of the tensorflow-datasets `oxford_iiit_pet` label
names, which is also the order of the class ids (1..37) in the original
annotation files. In the original file naming, cat breeds are capitalised
(`Abyssinian_12.jpg`) and dog breeds are lower case (`beagle_3.jpg`).
"""

from __future__ import annotations

OXFORD_BREEDS: list[str] = [
    "Abyssinian",
    "american_bulldog",
    "american_pit_bull_terrier",
    "basset_hound",
    "beagle",
    "Bengal",
    "Birman",
    "Bombay",
    "boxer",
    "British_Shorthair",
    "chihuahua",
    "Egyptian_Mau",
    "english_cocker_spaniel",
    "english_setter",
    "german_shorthaired",
    "great_pyrenees",
    "havanese",
    "japanese_chin",
    "keeshond",
    "leonberger",
    "Maine_Coon",
    "miniature_pinscher",
    "newfoundland",
    "Persian",
    "pomeranian",
    "pug",
    "Ragdoll",
    "Russian_Blue",
    "saint_bernard",
    "samoyed",
    "scottish_terrier",
    "shiba_inu",
    "Siamese",
    "Sphynx",
    "staffordshire_bull_terrier",
    "wheaten_terrier",
    "yorkshire_terrier",
]

_SPECIES = {name.lower(): ("cat" if name[0].isupper() else "dog") for name in OXFORD_BREEDS}


def species(class_name: str) -> str:
    """'cat' or 'dog' for an Oxford breed (any letter case), '' for any other class name."""
    return _SPECIES.get(class_name.strip().lower().replace(" ", "_"), "")


def breed_from_file_name(stem: str) -> str | None:
    """The Oxford breed of a file named like `Breed_123` (stem without extension), or None."""
    breed, sep, number = stem.rpartition("_")
    if not sep or not number.isdigit():
        return None
    return breed if breed in OXFORD_BREEDS else None
