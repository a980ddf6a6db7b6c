"""The Dataset page (views/dataset.py) under AppTest: counts, samples, full-size image, errors, Reload."""

from __future__ import annotations

import re

from tests.apptest import chart, start_app, texts
from tests.conftest import PET_BREEDS, save_image


def test_dataset_page_shows_counts_samples_and_one_image_at_full_size(workspace, pets):
    at = start_app(data_source="folder", data_path=str(pets))
    at.run()
    assert not at.exception
    assert texts(at.metric) == ["6", "30", "6", "12"]
    figure = chart(at, "label_counts_chart")
    by_species = {t["name"]: t["x"] for t in figure["data"]}
    assert set(by_species) == {"cat", "dog"}  # cats and dogs told apart by colour
    assert sorted(by_species["cat"]) == ["Abyssinian", "Bengal", "Persian"]
    assert len(at.image) == 12 + 1  # the grid, and one at full size
    assert re.search(r"shape \*\*24 × 3\d × 3\*\*", at.markdown[-1].value)

    at.segmented_control(key="counts_sort").set_value("name").run()
    order = chart(at, "label_counts_chart")["layout"]["xaxis"]["categoryarray"]
    assert order == sorted(PET_BREEDS, key=str.lower)

    at.selectbox(key="sample_species").set_value("dog").run()
    captions = [image.proto.imgs[0].caption for image in at.image[:-1]]
    assert captions and all(c.split(" · ")[0] in ("beagle", "boxer", "pug") for c in captions)
    at.selectbox(key="sample_breed").set_value("pug").run()
    assert {image.proto.imgs[0].caption.split(" · ")[0] for image in at.image[:-1]} == {"pug"}

    at.selectbox(key="sample_breed").set_value("all").run()
    at.selectbox(key="sample_species").set_value("all").run()
    before = [image.proto.imgs[0].caption for image in at.image[:-1]]
    at.button(key="reshuffle_samples").click().run()
    assert [image.proto.imgs[0].caption for image in at.image[:-1]] != before


def test_dataset_page_offline_gives_the_clear_message(workspace, monkeypatch):
    import core.data.tfds_source

    monkeypatch.setattr(core.data.tfds_source, "check_reachable", lambda url, timeout=5.0: False)
    at = start_app()
    at.button(key="prepare_dataset").click().run()
    assert not at.exception
    message = texts(at.error)[0]
    assert "no network" in message and "folder" in message
    assert not at.get("progress")  # no bar left hanging


def test_dataset_page_bad_folder_gives_one_sentence_and_reload_reads_it_again(workspace, tmp_path):
    (tmp_path / "one" / "only").mkdir(parents=True)
    save_image(tmp_path / "one" / "only" / "a.jpg", (1, 2, 3))
    at = start_app(data_source="folder", data_path=str(tmp_path / "one"))
    at.run()
    assert not at.exception
    assert "at least two classes" in texts(at.error)[0]

    # Fixing the folder is picked up at once (failures are not cached); later changes on Reload.
    for number in range(6):
        save_image(tmp_path / "one" / "other" / f"b{number}.jpg", (200, 2, 3))
    at.run()
    assert not at.error and texts(at.metric)[0] == "2"
    for number in range(6):
        save_image(tmp_path / "one" / "third" / f"c{number}.jpg", (2, 200, 3))
    at.run()
    assert texts(at.metric)[0] == "2"  # the opened source is kept between reruns
    at.button(key="reload_dataset").click().run()
    assert not at.exception and texts(at.metric)[0] == "3"
