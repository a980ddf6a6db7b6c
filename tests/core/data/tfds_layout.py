"""A tfds data folder prepared the way a real download leaves it, from generated Oxford files (no network).

tfds's download manager extracts each archive to `<data folder>/downloads/extracted/<method>.<name>/`
and hands those folders to the oxford_iiit_pet builder; here the generated images and annotations are
written to exactly those folders and only the network fetch is replaced, so the builder, the records it
writes and the extracted files it leaves behind are the real layout (core.data.tfds_browser reads them).
"""

from __future__ import annotations

from pathlib import Path
from unittest import mock

from tests.conftest import write_oxford_annotations, write_oxford_images

# The names tfds gives the extracted archives (resource.get_dl_fname of the URLs and checksums it pins).
EXTRACTED_IMAGES = (
    "TAR_GZ.thor.robots.ox.ac.uk_vgg_pets_imagesZxlcXhwB8atfm2pdIrjCelgNiW7ORYkX5h1Fkzf6MY0.tar.gz"
)
EXTRACTED_ANNOTATIONS = (
    "TAR_GZ.thor.robots.ox.ac.uk_vgg_pets_annotatioUkJftt5cQklCt2JrQoZW_L15jblwqTffYXUMDx01jpE.tar.gz"
)


def extracted_folder(data_dir: Path) -> Path:
    """Where tfds extracts the downloaded archives in the data folder PetLab prepares into."""
    return data_dir / "downloads" / "extracted"


def prepare_with_extracted_files(data_dir: Path, workspace: Path) -> Path:
    """Prepare oxford_iiit_pet in `data_dir` from files generated where tfds extracts; return the images."""
    import tensorflow_datasets as tfds

    from core.data import open_source

    extracted = extracted_folder(data_dir)
    images = write_oxford_images(extracted / EXTRACTED_IMAGES / "images")
    write_oxford_annotations(extracted / EXTRACTED_ANNOTATIONS)
    fetched = {"images": extracted / EXTRACTED_IMAGES, "annotations": extracted / EXTRACTED_ANNOTATIONS}
    fetch = mock.patch.object(
        tfds.download.DownloadManager,
        "download_and_extract",
        lambda self, urls: {k: fetched[k] for k in urls},
    )
    with fetch, mock.patch("core.data.tfds_source.check_reachable", return_value=True):
        source = open_source("tfds", str(data_dir), workspace=workspace, download=True)
    assert source.kind == "tfds" and source.split_size("test") == 9
    return images
