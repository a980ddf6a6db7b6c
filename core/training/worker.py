"""The training worker: claim queued runs one at a time, train each, record how it ended.

A run is first queued in the registry with its full config (core.runs.requests). Then a
worker process (the `train`/`finetune` command itself, or `python -m core worker` that the
dashboard spawns) claims it, trains it (core.training.head, core.training.finetune), and
reports every preparation stage, epoch and batch back to the registry, which is all the
dashboard reads. Only one run executes at a time: claiming is atomic in the registry.

Every fit backs itself up at the end of each epoch (core.training.callbacks). If the
process dies (kill -9, a crash, a full disk), `resume_run` puts the failed run back in the
queue and the next fit continues at the epoch after the last backed-up one; the registry
keeps the epochs already logged and adds the new ones. Because the best weights are on
disk too, and every epoch's batches and Dropout masks depend on (seed, epoch) alone, a
resumed run ends with the weights an uninterrupted one would. The backup is deleted once a
run ends normally (done or cancelled).

The same queue holds data jobs ("prepare": download and prepare a data source, queued by the
dashboard); `execute_run` hands them to core.training.prepare, so one job runs at a time and
a training run queued behind a download starts once the data is there. Experiments on cached
features are jobs too: a learning-rate finder pass ("lr_find", core.training.lr_finder) and a
sweep ("sweep", core.training.sweep), whose heads train as its "member" runs while the sweep
record carries the progress ("setting i of n", epoch). A killed sweep is reaped failed like
any run (core.runs.store); the members that finished before stay done. Analysis jobs study a
finished run on its backbone features: "embedding" (core.training.embedding_job) and
"label_issues" (core.training.label_issues); each records its own end.

Memory: each fine-tuning run leaves 0.3-0.5 GB of TensorFlow's native memory behind in the
process, and neither `keras.backend.clear_session(free_memory=True)`, `gc.collect()` nor
glibc's `malloc_trim` gives it back (measured: the same growth per run with all three). So
a long-lived worker replaces itself with a fresh process after each fine-tuning run
(`fresh_after_finetune`, core.runs.worker_process.restart_this_process); head runs do not
grow memory and keep the warm process.
"""

from __future__ import annotations

import errno
import shutil
import time

from core.errors import PetLabError
from core.progress import ProgressCallback, no_progress
from core.runs.records import ANALYSIS_KINDS, EMBEDDING, LR_FIND, PREPARE, SWEEP
from core.runs.store import RunRecord, RunStore
from core.training.callbacks import PROGRESS_INTERVAL_S, Printer
from core.training.device import configure_device
from core.training.finetune import finetune
from core.training.fit import TrainingRun
from core.training.head import train_head
from core.training.lr_finder import execute_lr_find
from core.training.prepare import execute_prepare
from core.training.sweep import execute_sweep

INTERRUPTED = "Training was interrupted (Ctrl-C); resume it to continue."


def run_queue(
    store: RunStore,
    until: int | None = None,
    say: Printer = print,
    progress: ProgressCallback = no_progress,
    poll_s: float = 1.0,
    linger_s: float = 0.0,
    fresh_after_finetune: bool = False,
) -> bool:
    """Execute queued runs one at a time; return when `until` has ended (or the queue is empty).

    Without `until`, an empty queue is watched for `linger_s` more seconds, so a run queued
    soon after starts at once in this warm process (backbone built, TensorFlow loaded).
    A run that fails is recorded as failed and the queue moves on; only the failure of
    `until` itself is raised.

    With `fresh_after_finetune`, it returns True right after a fine-tuning run has ended, so
    that a long-lived worker can replace itself with a fresh process (memory: see the module's note);
    it returns False otherwise.
    """
    announced = False
    idle_since: float | None = None
    while True:
        if until is not None and store.get(until).status not in ("queued", "running"):
            return False
        record = store.claim_next_queued()
        if record is None:
            if until is None:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= linger_s or not store.db_path.is_file():
                    return False  # nothing came, or the workspace is gone
                time.sleep(poll_s)
                continue
            active = store.active()
            if active is not None and not announced:
                doing = "is preparing its data" if active.kind == PREPARE else f"is running ({active.kind})"
                say(f"waiting: run {active.id} {doing}; run {until} is queued behind it")
                announced = True
            time.sleep(poll_s)
            continue
        idle_since = None
        try:
            execute_run(store, record, say=say, progress=progress)
        except PetLabError as exc:
            if record.id == until:
                raise
            say(f"run {record.id} failed: {exc}")
        if fresh_after_finetune and record.kind == "finetune":
            return True


def execute_run(
    store: RunStore, record: RunRecord, say: Printer = print, progress: ProgressCallback = no_progress
) -> None:
    """Train one claimed run (or carry out a data job) to its end, recording done / failed / cancelled.

    A full disk or an unwritable workspace fails the run with one clear sentence
    (a PetLabError); its backup stays, so it can be resumed once there is space.
    """
    if record.kind == PREPARE:
        execute_prepare(store, record, say, reporting_progress(store, record.id, progress))
        return
    run = TrainingRun(store, record, say, reporting_progress(store, record.id, progress))
    try:
        configure_device()
        if record.kind in (SWEEP, LR_FIND):  # each records its own end (its own kind of results)
            _execute_experiment(store, record, say, run.progress)
            return
        if record.kind in ANALYSIS_KINDS:  # likewise
            _execute_analysis(store, record, say, run.progress)
            return
        status, metrics = train_head(run) if record.kind == "head" else finetune(run)
        store.finish(record.id, status, metrics)
        shutil.rmtree(run.paths.backup, ignore_errors=True)
        say(f"run {record.id} {status}")
    except PetLabError as exc:
        store.finish(record.id, "failed", error=str(exc))
        raise
    except OSError as exc:
        error = file_error(store, exc)
        store.finish(record.id, "failed", error=str(error))
        raise error from None
    except KeyboardInterrupt:
        store.finish(record.id, "failed", error=INTERRUPTED)
        raise
    except Exception as exc:  # a bug or a resource problem: record it, then let it surface
        store.finish(record.id, "failed", error=f"Training failed: {type(exc).__name__}: {exc}"[:500])
        raise


def _execute_experiment(store: RunStore, record: RunRecord, say: Printer, progress: ProgressCallback) -> None:
    if record.kind == SWEEP:
        execute_sweep(store, record, say, progress)
        return
    suggestion = execute_lr_find(store, record, progress).suggestion
    found = "no suggestion (the loss never fell)" if suggestion is None else f"suggested lr {suggestion:.3g}"
    say(f"run {record.id} done: {found}")


def _execute_analysis(store: RunStore, record: RunRecord, say: Printer, progress: ProgressCallback) -> None:
    if record.kind == EMBEDDING:
        from core.training.embedding_job import execute_embedding

        execute_embedding(store, record, say, progress)
    else:
        from core.training.label_issues import execute_label_issues

        execute_label_issues(store, record, say, progress)


def file_error(store: RunStore, exc: OSError) -> PetLabError:
    """One sentence for a file error while training: above all a full disk or a read-only workspace."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(exc):
        reason = "the disk is full"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason = "it is not writable"
    else:
        where = f" ({exc.filename})" if exc.filename else ""
        return PetLabError(
            f"Training stopped on a file error: {exc.strerror or exc}{where}; check the workspace "
            f"{store.workspace} and the data, then resume the run."
        )
    return PetLabError(
        f"Could not write the run's files in {store.workspace} ({reason}); free space or fix the "
        "workspace, then resume the run."
    )


def reporting_progress(store: RunStore, run_id: int, also: ProgressCallback) -> ProgressCallback:
    """A progress callback that also records preparation stages in the registry, for the dashboard."""
    last = [0.0]

    def report(stage: str, done: int, total: int | None) -> None:
        also(stage, done, total)
        now = time.monotonic()
        if now - last[0] >= PROGRESS_INTERVAL_S or (total is not None and done >= total):
            last[0] = now
            store.set_progress(run_id, stage=stage, done=done, total=total)

    return report
