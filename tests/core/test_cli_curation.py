"""`label-issues` and `train --no-curation` on the command line.

The flipped striped data and its head run (tests.core.curation.flipped), in a private copy of the
workspace; the command runs in this process through the parser and its command function.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core import cli
from core.cli import commands
from core.cli.parser import EXIT_OK, build_parser
from core.curation.marks import Curation, Mark, clear_marks, save_mark, take_snapshot
from core.curation.ranking import read_ranking
from core.runs.records import LABEL_ISSUES
from core.runs.store import RunStore
from tests.core.curation.flipped import flipped_run, private_copy


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> tuple[Path, int]:
    """A copy of the flipped run's workspace (feature cache included) and its run id."""
    flipped = flipped_run(tmp_path_factory.getbasetemp() / "flipped-labels")
    return private_copy(flipped, tmp_path_factory.mktemp("cli-curation")), flipped.run_id


def label_issues(workspace: Path, *flags: str) -> int:
    return cli.main(["label-issues", "--workspace", str(workspace), *flags])


def jobs(workspace: Path, run_id: int) -> list:
    return [r for r in RunStore(workspace).list() if r.kind == LABEL_ISSUES and r.parent == run_id]


def test_label_issues_prints_the_most_suspect_images_first(workspace, capsys) -> None:
    """Catches lines in another format, another order, or a count other than --top."""
    folder, run_id = workspace
    assert label_issues(folder, "--run", str(run_id), "--top", "7", "--folds", "3") == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    (job,) = jobs(folder, run_id)
    assert job.status == "done" and job.config[LABEL_ISSUES] == {"folds": 3}
    ranking = read_ranking(RunStore(folder).paths(job.id).label_issues)
    assert len(lines) == 7
    fields = [line.split(" ") for line in lines]
    assert all(len(f) == 4 for f in fields)
    assert [f[0] for f in fields] == list(ranking["file"].head(7))
    assert [(f[1], f[2]) for f in fields] == list(zip(ranking["given"], ranking["suggested"], strict=False))[
        :7
    ]
    scores = [float(f[3]) for f in fields]
    assert scores == sorted(scores) and all(0 <= s <= 1 for s in scores)


def test_a_second_call_reads_the_finished_ranking(workspace, capsys) -> None:
    folder, run_id = workspace
    label_issues(folder, "--run", str(run_id), "--top", "3")
    first = capsys.readouterr().out.splitlines()
    assert label_issues(folder, "--run", str(run_id)) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert len(jobs(folder, run_id)) == 1  # nothing computed again
    assert len(lines) == 20 and lines[:3] == first


def test_train_uses_the_saved_marks_unless_told_not_to(workspace, monkeypatch) -> None:
    """Catches --no-curation ignored, or marks not frozen into the queued run's config."""
    folder, run_id = workspace
    data = RunStore(folder).get(run_id).data
    base = Curation(data_fingerprint(folder, data), ["Abyssinian", "Bengal", "beagle"])
    save_mark(folder, data, base, Mark("train", 0, "x.png", "Abyssinian", "relabel", "beagle"))
    queued: list[int] = []
    monkeypatch.setattr(commands, "_run_to_end", lambda store, run: queued.append(run) or EXIT_OK)
    flags = ["--workspace", str(folder), "--source", "folder", "--path", data.path]
    for extra in ([], ["--no-curation"]):
        assert commands.cmd_train(build_parser().parse_args(["train", *flags, *extra])) == EXIT_OK
    store = RunStore(folder)
    curated, plain = (store.get(run).data.curation for run in queued)
    assert curated == take_snapshot(folder, data) is not None
    assert plain is None
    clear_marks(folder, data)


def data_fingerprint(workspace: Path, data) -> str:
    from core.data import open_source

    return open_source(data.source, data.path, workspace=workspace, data_config=data).fingerprint()
