"""The dashboard latency benchmark's pure helpers: percentiles, verdicts, the table, its pages and data."""

from __future__ import annotations

from pathlib import Path

from benchmarks import latency_table as table
from benchmarks import ui_latency as bench
from tests.conftest import save_image


def test_percentiles_of_twenty_switches():
    seconds = [0.1 * n for n in range(1, 21)]  # 0.1 … 2.0
    assert table.percentile(seconds, 50) == 1.05
    assert round(table.percentile(seconds, 95), 3) == 1.905
    assert table.percentile([0.3], 95) == 0.3


def test_switch_rows_need_both_p50_and_p95_within_target():
    fast = table.switch_row("a", [0.2] * 19 + [0.9], "")
    slow_tail = table.switch_row("b", [0.2] * 18 + [3.0, 3.0], "")
    assert (fast.met, round(fast.typical, 2)) == ("yes", 0.2)
    assert slow_tail.met == "MISS" and slow_tail.worst > 1


def test_timing_rows_are_judged_on_the_median_and_show_the_worst():
    row = table.timing_row("first", [1.0, 1.5, 4.0], target_s=2.0)
    assert (row.n, row.typical, row.worst, row.met, row.target) == (3, 1.5, 4.0, "yes", "≤ 2 s")
    assert table.timing_row("slow", [2.5], target_s=2.0).met == "MISS"
    assert table.timing_row("untargeted", [2.5]).met == ""


def test_the_table_is_markdown_with_one_line_per_row():
    rows = [table.timing_row("first", [1.0], 2.0, "note"), table.switch_row("a", [0.2, 0.4], "cpu")]
    lines = table.render(rows, ["header"]).splitlines()
    assert lines[0] == "header"
    assert lines[1].startswith("| measure | n | p50 |") and lines[2].startswith("|---|")
    assert lines[3] == "| first | 1 | 1.00 s | 1.00 s | ≤ 2 s | yes | note |"
    assert lines[4].startswith("| 2a | 2 | 0.30 s | 0.39 s |")


def test_the_pages_are_app_pys():
    pages = bench.dashboard_pages()
    assert pages[0] == ("Dataset", "dataset")
    assert [title for title, _ in pages] == [
        "Dataset",
        "Augmentation",
        "Training",
        "Evaluation",
        "Predict",
        "Embedding map",
        "Label issues",
    ]


def test_data_oxford_names_class_folders_or_generated(tmp_path: Path):
    oxford = tmp_path / "oxford"
    for n in range(1, 4):
        save_image(oxford / f"Abyssinian_{n}.jpg", (200, 40, 40))
    assert bench.pick_data(oxford, tmp_path).source == "oxford-files"
    folders = tmp_path / "folders"
    save_image(folders / "cat" / "a.jpg", (200, 40, 40))
    picked = bench.pick_data(folders, tmp_path)
    assert (picked.source, picked.photos) == ("folder", [folders / "cat" / "a.jpg"])
    generated = bench.pick_data(tmp_path / "missing", tmp_path)
    assert generated.source == "folder" and generated.path.is_relative_to(tmp_path)
    assert len({p.parent.name for p in generated.path.glob("*/*.jpg")}) == 6
    assert len(generated.photos) >= 16  # the upload measurements use 16 photos


def test_stopping_a_group_reaps_its_leader():
    """The benchmark's servers are its children: stopping one reaps it, so the stop does not sit out
    the grace period waiting for a zombie to leave its process group."""
    import subprocess

    from benchmarks.dashboard import stop_group

    leader = subprocess.Popen(["sleep", "60"], start_new_session=True)
    stop_group(leader.pid, leader)
    assert leader.returncode is not None
