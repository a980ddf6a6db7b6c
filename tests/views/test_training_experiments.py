"""The Training page's experiments (ui.sweep, ui.live, ui.run_status) under AppTest.

Nothing trains here: requests are queued from the page with the worker replaced by the
`spawned` fixture, and finished experiments are written into the registry by hand, as the
worker would leave them (core.training.sweep.execute_sweep, core.training.lr_finder.execute_lr_find).
"""

from __future__ import annotations

import pandas as pd

from core.runs.store import RunStore
from tests.apptest import TINY, chart, open_page, sidebar_widget, start_app, texts
from tests.views.test_evaluation import array  # a figure's array, maybe sent as base64

TRAIN = {"backbone": "mobilenetv3small", "weights": "none", "image_size": 32, "epochs": 5, "batch_size": 16}


def open_experiments(at):
    """Open the page's experiments section (drawn only while open) and rerun."""
    at.session_state["experiments_open"] = True
    return at.run()


def widget(at, kind: str, key: str):
    (found,) = [w for w in getattr(at, kind) if w.key == key]
    return found


def test_the_sweep_form_queues_a_sweep_of_the_chosen_grid(workspace, pets, spawned):
    at = start_app(data_source="folder", data_path=str(pets), **TINY)
    open_experiments(open_page(at, "training"))
    widget(at, "multiselect", "sweep_grid_lr").set_value([1e-3, 1e-2])
    widget(at, "multiselect", "sweep_grid_dropout").set_value([0.1, 0.3, 0.5]).run()
    assert any("**6** heads" in text for text in texts(at.caption))
    at.button(key="start_sweep").click().run()
    assert not at.error, texts(at.error)
    (sweep,) = RunStore(workspace).list()
    assert (sweep.kind, sweep.status, sweep.train.backbone) == ("sweep", "queued", "mobilenetv3small")
    assert sweep.config["sweep"]["settings"] == [
        {"lr": lr, "dropout": d, "label_smoothing": 0.0, "batch_size": 32, "epochs": 25}
        for lr in (1e-3, 1e-2)
        for d in (0.1, 0.3, 0.5)
    ]
    assert spawned == [workspace.resolve()]


def test_find_a_learning_rate_queues_a_finder_job(workspace, pets, spawned):
    at = start_app(data_source="folder", data_path=str(pets), **TINY)
    open_experiments(open_page(at, "training"))
    at.button(key="find_lr").click().run()
    assert not at.error, texts(at.error)
    (job,) = RunStore(workspace).list()
    assert (job.kind, job.status, job.data.source) == ("lr_find", "queued", "folder")
    assert spawned == [workspace.resolve()]


def finished_sweep(store: RunStore) -> tuple[int, list[int], int]:
    """A done sweep of 3 learning rates as the worker leaves it: (sweep, members, promoted run)."""
    settings = [{"lr": 1e-4}, {"lr": 1e-3}, {"lr": 1e-2}]
    sweep = store.create(
        "sweep", {"data": {"source": "folder"}, "train": TRAIN, "sweep": {"settings": settings}}
    )
    accuracies = [0.40, 0.90, 0.70]
    members = []
    for number, (setting, accuracy) in enumerate(zip(settings, accuracies, strict=True), start=1):
        config = {"train": TRAIN | setting, "sweep": {"member": number, "settings": setting}}
        member = store.create("member", config, parent=sweep, status="running")
        for epoch in (1, 2):
            logged = {
                "accuracy": accuracy,
                "val_accuracy": accuracy * epoch / 2,
                "loss": 1.0,
                "val_loss": 1 / epoch,
            }
            store.log_epoch(member, epoch, logged, 1.0)
        store.finish(member, "done", {"best_val_accuracy": accuracy, "best_val_loss": 0.5, "epochs_run": 2})
        members.append(member)
    winner = store.create("head", {"train": TRAIN | settings[1]}, parent=sweep, status="done")
    metrics = {"winner": winner, "winner_member": members[1], "best_val_accuracy": 0.9}
    with store._write() as conn:
        conn.execute("UPDATE runs SET status = 'running' WHERE id = ?", (sweep,))
    store.finish(sweep, "done", metrics)
    return sweep, members, winner


def test_a_finished_sweep_shows_its_leaderboard_curves_and_parallel_coordinates(workspace):
    _, _, winner = finished_sweep(RunStore(workspace))
    at = start_app()
    open_experiments(open_page(at, "training"))
    (table,) = [frame.value for frame in at.dataframe if "setting" in frame.value]
    assert list(table["setting"]) == ["setting 2", "setting 3", "setting 1"]  # best validation first
    assert list(table["winner"]) == [True, False, False]
    assert list(table["learning rate"]) == [1e-3, 1e-2, 1e-4]
    assert any("test split is never used to choose" in text for text in texts(at.caption))
    assert any(f"promoted to run {winner}" in text for text in texts(at.success))
    (parallel,) = chart(at, "sweep_parallel_chart")["data"]
    assert parallel["type"] == "parcoords"
    assert sorted(array(parallel["line"]["color"])) == [40.0, 70.0, 90.0]
    curves = chart(at, "sweep_accuracy_chart")["data"]
    assert sorted(trace["name"] for trace in curves) == ["setting 1", "setting 2", "setting 3"]
    # The runs table lists the promoted run, not the sweep's members.
    (runs,) = [frame.value for frame in at.dataframe if "run" in frame.value]
    assert list(runs["run"]) == [winner]


def test_the_live_panel_follows_a_running_sweep(workspace):
    store = RunStore(workspace)
    settings = [{"lr": 1e-4}, {"lr": 1e-3}, {"lr": 1e-2}]
    sweep = store.create("sweep", {"train": TRAIN, "sweep": {"settings": settings}}, status="running")
    member = store.create("member", {"train": TRAIN}, parent=sweep, status="running")
    store.set_progress(sweep, member=2, members=3, member_run=member, epoch=3, epochs=5)
    at = start_app()
    open_experiments(open_page(at, "training"))
    bar = at.get("progress")[0]
    assert bar.text == "Setting 2 of 3 · epoch 3 of 5" and bar.value == 46  # (1 + 2/5) of 3
    assert any(f"Run {sweep}: sweep of 3 settings" in m.value for m in at.markdown)
    at.button(key="cancel_run").click().run()
    assert store.get(sweep).cancel_requested and not store.get(member).cancel_requested
    assert any("after the current setting" in text for text in texts(at.warning))


def test_use_puts_the_finders_suggestion_into_the_sidebar(workspace):
    store = RunStore(workspace)
    job = store.create("lr_find", {"data": {"source": "folder"}, "train": TRAIN}, status="running")
    paths = store.paths(job)
    paths.create()
    lrs = [10 ** (-7 + i * 0.1) for i in range(60)]
    curve = pd.DataFrame({"lr": lrs, "loss": [2.0 - i / 60 for i in range(60)], "raw_loss": 2.0})
    curve.to_csv(paths.lr_curve, index=False)
    store.finish(job, "done", {"suggested_lr": 2.4e-3, "points": 60})
    at = start_app()
    open_experiments(open_page(at, "training"))
    figure = chart(at, "lr_finder_chart")
    assert figure["layout"]["xaxis"]["type"] == "log"
    assert any(trace["name"] == "suggested 0.0024" for trace in figure["data"])
    assert sidebar_widget(at, "lr").value == 1e-3
    at.button(key="use_lr").click().run()
    assert sidebar_widget(at, "lr").value == 3e-3  # the nearest learning rate the sidebar offers
    assert not at.exception


def test_the_experiments_section_is_computed_only_while_open(workspace):
    finished_sweep(RunStore(workspace))
    at = open_page(start_app(), "training")
    assert "find_lr" not in [b.key for b in at.button] and "start_sweep" not in [b.key for b in at.button]
    assert not [frame for frame in at.dataframe if "setting" in frame.value]  # no leaderboard sent
    at = open_experiments(at)
    assert "find_lr" in [b.key for b in at.button] and "start_sweep" in [b.key for b in at.button]
