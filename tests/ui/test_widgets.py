"""ui.widgets.top_predictions under AppTest: a photo's ranked classes as labelled bars."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def ranked_bars() -> None:
    from ui.widgets import top_predictions

    # 1.0000001: a float32 softmax rounded a hair above 1.
    top_predictions([("pug", 1.0000001), ("beagle", 0.2), ("Abyssinian", 0.004)], "top5_0")
    top_predictions([("beagle", 0.5)], "top5_1")
    top_predictions([("staffordshire_bull_terrier", 0.6), ("*cat* [x](y) :red[z]", 0.3)], "top5_2")


def test_top_predictions_draws_one_labelled_bar_per_class_in_order_in_its_container():
    at = AppTest.from_function(ranked_bars).run()
    assert not at.exception, at.exception
    bars = at.get_by_key("top5_0").progress
    assert [(bar.text, bar.value) for bar in bars] == [
        ("pug · 100.0%", 100),
        ("beagle · 20.0%", 20),
        ("Abyssinian · 0.4%", 0),
    ]
    assert [bar.text for bar in at.get_by_key("top5_1").progress] == ["beagle · 50.0%"]


def test_class_names_show_as_they_are_not_as_markdown():
    at = AppTest.from_function(ranked_bars).run()
    texts = [bar.text for bar in at.get_by_key("top5_2").progress]
    assert texts == [
        r"staffordshire\_bull\_terrier · 60.0%",
        r"\*cat\* \[x\]\(y\) \:red\[z\] · 30.0%",
    ]
