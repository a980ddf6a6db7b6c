"""What the tfds source reports while preparing, and what it deletes after an interrupted preparation.

Catches: tfds's download and extraction bars drawn on the terminal (or lost) instead of reaching
the progress callback; the patch outliving the preparation; cleaning up after a cancel deleting a
prepared dataset or a finished download, or leaving tfds's unfinished folders.
"""

from __future__ import annotations

from core.data.tfds_source import _tfds_bars_reported, bar_stage, remove_incomplete


def test_tfds_bars_reach_the_progress_callback_and_not_the_terminal(capsys):
    from tensorflow_datasets.core.utils import tqdm_utils

    before = tqdm_utils.tqdm_lib
    calls = []
    with _tfds_bars_reported(lambda *call: calls.append(call)):
        # As tfds's downloader draws them: one bar of URLs, one of MiB, updated from its threads.
        with (
            tqdm_utils.async_tqdm(total=0, desc="Dl Completed...", unit=" url") as urls,
            tqdm_utils.async_tqdm(total=0, desc="Dl Size...", unit=" MiB") as size,
        ):
            urls.update_total(2)
            size.update_total(773)
            size.update(300)
            urls.update(1)
        for _ in tqdm_utils.tqdm(range(3), desc="Generating validation examples...", total=3):
            pass
    assert tqdm_utils.tqdm_lib is before  # restored: later bars draw as usual
    downloading = [c for c in calls if c[0] == "downloading the Oxford-IIIT Pet archives (MB)"]
    assert downloading[-1] == ("downloading the Oxford-IIIT Pet archives (MB)", 300, 773)
    assert calls[-1] == ("writing the validation examples", 3, 3)
    assert {c[0] for c in calls} == {downloading[0][0], "writing the validation examples"}  # no URL bar
    assert capsys.readouterr().err == ""


def test_bar_stages():
    assert bar_stage("Extraction completed...") == "extracting the archives (files)"
    assert bar_stage("Shuffling /x/oxford_iiit_pet/incomplete.1/oxford_iiit_pet-test.tfrecord*...") == (
        "shuffling the test examples"
    )
    assert bar_stage("Generating splits...") is None and bar_stage(None) is None


def test_remove_incomplete_keeps_prepared_data_and_finished_downloads(tmp_path):
    data_dir = tmp_path / "tfds"
    prepared = data_dir / "oxford_iiit_pet" / "4.0.0"
    prepared.mkdir(parents=True)
    (prepared / "dataset_info.json").write_text("{}")
    unfinished = data_dir / "oxford_iiit_pet" / "incomplete.5f2e.4.0.0"
    unfinished.mkdir()
    (unfinished / "records").write_bytes(b"half")
    downloads = data_dir / "downloads"
    (downloads / f"images.tar.gz.tmp.{'0f' * 16}").mkdir(parents=True)
    (downloads / "extracted" / "incomplete.77_TAR_GZ.images").mkdir(parents=True)
    (downloads / "extracted" / "TAR_GZ.annotations").mkdir()
    (downloads / "annotations.tar.gz").write_bytes(b"done")

    removed = remove_incomplete(tmp_path / "ws", data_dir)
    assert len(removed) == 3
    assert sorted(p.name for p in (data_dir / "oxford_iiit_pet").iterdir()) == ["4.0.0"]
    assert (prepared / "dataset_info.json").is_file()
    assert sorted(p.name for p in downloads.iterdir()) == ["annotations.tar.gz", "extracted"]
    assert [p.name for p in (downloads / "extracted").iterdir()] == ["TAR_GZ.annotations"]
    assert remove_incomplete(tmp_path / "ws", tmp_path / "nothing") == []
