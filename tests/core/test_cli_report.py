"""`python -m core report`: write a run's HTML report, print its path; errors in one line, exit 1 or 2.

In-process (core.cli.main) on a private copy of the one real finished tiny run (`trained_copy`).
"""

from __future__ import annotations

from core import cli
from core.runs.layout import RunPaths
from core.runs.store import RunStore


def test_report_writes_the_run_folder_file_and_prints_its_path(trained_copy, capsys):
    assert cli.main(["report", "--run", "1", "--workspace", str(trained_copy)]) == 0
    path = RunPaths.of(trained_copy, 1).report
    assert capsys.readouterr().out.strip() == str(path)
    assert path.is_file() and 'id="confusion-matrix"' in path.read_text(encoding="utf-8")


def test_report_out_writes_where_asked(trained_copy, tmp_path, capsys):
    out = tmp_path / "reports" / "one.html"
    assert cli.main(["report", "--run", "1", "--out", str(out), "--workspace", str(trained_copy)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_report_of_an_unknown_run_or_a_data_job_exits_2_with_one_line(trained_copy, capsys):
    assert cli.main(["report", "--run", "42", "--workspace", str(trained_copy)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: Run 42 does not exist") and len(err.splitlines()) == 1

    store = RunStore(trained_copy)
    job = store.create("prepare", {"data": store.get(1).config["data"]}, status="done")
    assert cli.main(["report", "--run", str(job), "--workspace", str(trained_copy)]) == 2
    assert "trains no model" in capsys.readouterr().err


def test_a_report_that_cannot_be_written_exits_1(trained_copy, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert (
        cli.main(["report", "--run", "1", "--out", str(blocker / "r.html"), "--workspace", str(trained_copy)])
        == 1
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: The report cannot be written") and len(err.splitlines()) == 1
