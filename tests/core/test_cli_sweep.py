"""`lr-find` and `sweep` on the command line: what they print and leave, and how they refuse bad input.

Generated images a head can learn and a calibrated random backbone (tests.tiny_models.striped_experiment);
the commands run in this process (the `python -m core` entry itself is covered by tests/core/test_cli.py).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from core import cli
from core.runs.store import RunStore
from core.training import sweep
from core.training.lr_finder import suggest
from tests.tiny_models import striped_experiment


def main_exit_code(argv: list[str]) -> int:
    """cli.main's exit code, also when the parser exits (a usage error)."""
    try:
        return cli.main(argv)
    except SystemExit as exit_info:
        return int(exit_info.code)


@pytest.fixture(scope="module")
def data_flags(tmp_path_factory) -> list[str]:
    """The flags naming the generated data and backbone."""
    data, train = striped_experiment(tmp_path_factory.getbasetemp() / "striped-experiment")
    return [
        *("--source", "folder", "--path", data.path, "--backbone", train.backbone),
        *("--weights", train.weights, "--image-size", str(train.image_size)),
    ]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """The workspace whose feature cache tests.tiny_models.striped_features fills (its registry is ours)."""
    return tmp_path_factory.getbasetemp() / "striped-experiment" / "workspace"


def printed(lines: list[str], name: str) -> str:
    """The value of the one printed line `name: value`."""
    (value,) = [line.removeprefix(f"{name}: ") for line in lines if line.startswith(f"{name}: ")]
    return value


def test_lr_find_prints_the_suggestion_of_the_curve_it_wrote(data_flags, workspace, capsys) -> None:
    """Catches a printed suggestion that is not the written curve's, or a curve that is not written."""
    argv = ["lr-find", *data_flags, "--batch-size", "16", "--workspace", str(workspace)]
    assert main_exit_code(argv) == cli.EXIT_OK
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(": ")[0] for line in lines[-2:]] == ["curve", "suggestion"]
    (job,) = [r for r in RunStore(workspace).list() if r.kind == "lr_find"]
    path = Path(printed(lines, "curve"))
    assert path == RunStore(workspace).paths(job.id).lr_curve and job.status == "done"
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    lrs, losses = [float(row["lr"]) for row in rows], [float(row["loss"]) for row in rows]
    assert len(rows) > 20 and lrs == sorted(lrs)
    suggestion = float(printed(lines, "suggestion"))
    assert suggestion == pytest.approx(suggest(lrs, losses), rel=5e-3)  # printed to 3 significant digits
    assert job.metrics["suggested_lr"] == pytest.approx(suggestion, rel=5e-3)
    assert not [r for r in RunStore(workspace).list() if r.trains]  # nothing was trained for keeps


def test_sweep_ends_with_the_winner_promoted_to_a_head_run(data_flags, workspace, capsys) -> None:
    """Catches a `run:` that is not the best member by validation, or not a usable head run."""
    swept = ["--lr", "1e-5,1e-2", "--epochs", "2", "--batch-size", "16"]
    assert main_exit_code(["sweep", *data_flags, *swept, "--workspace", str(workspace)]) == cli.EXIT_OK
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("run: ")
    run_id = int(lines[-1].removeprefix("run: "))
    store = RunStore(workspace)
    (sweep_record,) = [r for r in store.list() if r.kind == "sweep"]
    assert [
        line.split(":")[1].strip() for line in lines if line.startswith(f"sweep {sweep_record.id}: ")
    ] == [
        "setting 1/2",
        "setting 2/2",
    ]
    members = [r for r in store.list() if r.kind == "member"]
    assert len(members) == 2 and {m.parent for m in members} == {sweep_record.id}
    assert all(m.status == "done" and m.broken is None for m in members)
    best = max(members, key=lambda m: m.metrics["best_val_accuracy"])
    record = store.get(run_id)
    assert (record.kind, record.parent, record.status, record.broken) == (
        "head",
        sweep_record.id,
        "done",
        None,
    )
    assert record.metrics["best_val_accuracy"] == best.metrics["best_val_accuracy"]
    assert sweep_record.status == "done" and sweep_record.metrics["winner"] == run_id


def test_sweep_random_draws_from_the_ranges_given(data_flags, workspace, monkeypatch, capsys) -> None:
    """Catches --random ignoring a range or the seed (the heads themselves are not trained here)."""
    drawn: list[list[dict]] = []

    def no_training(store, features, settings, new_run, hooks):
        drawn.append(settings)
        return sweep.SweepResult([], None, None, stopped=True)

    monkeypatch.setattr(sweep, "run_sweep", no_training)
    flags = ["--random", "5", "--lr", "1e-4:1e-1", "--dropout", "0.1,0.3", "--workspace", str(workspace)]
    for seed in ("1", "1", "2"):
        assert main_exit_code(["sweep", *data_flags, *flags, "--seed", seed]) == cli.EXIT_FAILED
    assert "nothing was promoted" in capsys.readouterr().err
    assert drawn[0] == drawn[1] != drawn[2]
    for settings in drawn[0]:
        assert set(settings) == {"lr", "dropout"}
        assert 1e-4 <= settings["lr"] <= 1e-1 and settings["dropout"] in (0.1, 0.3)
    assert len({round(math.log10(s["lr"]), 6) for s in drawn[0]}) == 5


@pytest.mark.parametrize(
    "args",
    [
        ["sweep", "--lr", "1e-5:1e-2"],  # a range without --random
        ["sweep", "--lr", "0,1e-3"],
        ["sweep", "--lr", "1e-3:1e-2:1e-1"],
        ["sweep", "--dropout", "0.1,1.5"],
        ["sweep", "--batch-size", "16,x"],
        ["sweep", "--epochs", "2.5"],
        ["sweep", "--random", "0", "--lr", "1e-4:1e-2"],
        ["sweep", "--random", "101", "--lr", "1e-4:1e-2", "{data}"],
        ["sweep", "--augment", "rotation=0.1", "{data}"],
        ["sweep", "{data}", "--backbone", "vgg99"],
        ["lr-find", "--label-smoothing", "1"],
        ["lr-find", "--augment", "flip,zoom=0.1", "{data}"],
    ],
)
def test_bad_input_exits_2_with_one_line(args, data_flags, tmp_path, capsys) -> None:
    argv = [part for arg in args for part in (data_flags if arg == "{data}" else [arg])]
    assert main_exit_code([*argv, "--workspace", str(tmp_path)]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not RunStore(tmp_path).list()
