"""Data sources for PetLab: where labelled pet images come from, how they are split, and their cache.

Three sources share one interface (DataSource): the reference tensorflow-datasets
`oxford_iiit_pet`, the original Oxford files, and a folder of class sub-folders.
`open_source` picks one by kind; `ImageCache` keeps decoded, resized splits on disk.
"""

from core.data.base import DataSource
from core.data.breeds import OXFORD_BREEDS, species
from core.data.cache import ImageCache
from core.data.sources import open_source
from core.data.splits import stratified_split

__all__ = ["OXFORD_BREEDS", "DataSource", "ImageCache", "open_source", "species", "stratified_split"]
