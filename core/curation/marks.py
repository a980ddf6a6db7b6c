"""The person's curation marks: relabel, exclude or keep, per image, saved per data source.

A mark names one image by split, index and file name, with its given label and what the person
decided: `relabel` (to another class, by name), `exclude` (leave it out of training) or `keep`
(looked at, the label is right: changes nothing, but the page shows it as reviewed). Only the
train and validation splits are curated: the test split measures, and a test split that changed
from run to run would make runs before and after curation incomparable.

The marks of one data source live in `<workspace>/curation/<key>.json`, the key being a digest of
the settings that decide which image is which (source kind, path, split fractions and seed,
`source_key`). They are tied to the fingerprint of the data they were made on: the fingerprint
the training side names its caches by (core.data.DataSource.fingerprint), which the label-issue
ranking records. The dashboard's server cannot compute it for the reference dataset without
TensorFlow (it browses tfds's extracted originals, core.data.tfds_browser, whose fingerprint
differs), so the file is found by its settings and the fingerprint is checked where it is known:
by the training process, which refuses marks made on other data, and by a page showing a ranking.

When a run is queued (core.runs.requests), the marks that change something are copied into an
immutable snapshot, `<workspace>/curation/snapshots/<digest>.json`, named by the digest of its
content; the run's DataConfig.curation holds that digest, so marks edited later never change a
queued run, and two runs with the same digest trained on the same curated data.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.config import DataConfig
from core.errors import BadInputError, NotFoundError, PetLabError
from core.workspace import atomic_write_json, read_json

FORMAT = 1
ACTIONS = ("keep", "exclude", "relabel")
CURATED_SPLITS = ("train", "validation")  # never the test split (see the module's note)
FOLDER, SNAPSHOTS = "curation", "snapshots"


@dataclass(frozen=True)
class Mark:
    """What the person decided for one image: `label` is the new class name of a relabel."""

    split: str
    index: int
    file: str
    given: str
    action: str
    label: str | None = None

    @property
    def place(self) -> tuple[str, int]:
        return self.split, self.index

    @property
    def changes(self) -> bool:
        """Whether training sees the image differently: excluded, or relabelled to another class."""
        return self.action == "exclude" or (self.action == "relabel" and self.label != self.given)

    def check(self, classes: list[str]) -> Mark:
        """This mark; BadInputError when it names no curated split, no action or an unknown class."""
        if self.split not in CURATED_SPLITS:
            raise BadInputError(
                f"Only training and validation images can be curated, not {self.split} ones: "
                "the test split measures every run the same way."
            )
        if self.action not in ACTIONS:
            raise BadInputError(f"A mark is one of {', '.join(ACTIONS)}, not {self.action!r}.")
        if self.action == "relabel" and self.label not in classes:
            raise BadInputError(f"There is no class {self.label!r} to relabel {self.file} to.")
        return self


@dataclass(frozen=True)
class Curation:
    """The marks made on one version of a data source (`fingerprint`, with its class names)."""

    fingerprint: str
    classes: list[str]
    marks: tuple[Mark, ...] = ()

    def mark_of(self, split: str, index: int) -> Mark | None:
        return next((m for m in self.marks if m.place == (split, index)), None)

    def with_mark(self, mark: Mark) -> Curation:
        """These marks with `mark` replacing any earlier one of the same image."""
        kept = [m for m in self.marks if m.place != mark.place]
        return dataclasses.replace(self, marks=tuple(sorted([*kept, mark.check(self.classes)], key=_order)))

    def without(self, split: str, index: int) -> Curation:
        return dataclasses.replace(self, marks=tuple(m for m in self.marks if m.place != (split, index)))

    def changing(self) -> tuple[Mark, ...]:
        """The marks training applies (excluded, or relabelled to another class)."""
        return tuple(m for m in self.marks if m.changes)

    def counts(self) -> dict[str, int]:
        """{"relabelled": n, "excluded": n, "kept": n}: kept counts the marks that change nothing."""
        changing = self.changing()
        excluded = sum(m.action == "exclude" for m in changing)
        return {
            "relabelled": len(changing) - excluded,
            "excluded": excluded,
            "kept": len(self.marks) - len(changing),
        }

    def to_json(self) -> dict:
        marks = [dataclasses.asdict(m) for m in self.marks]
        return {"format": FORMAT, "fingerprint": self.fingerprint, "classes": self.classes, "marks": marks}

    @classmethod
    def from_json(cls, values: dict) -> Curation:
        classes = [str(name) for name in values["classes"]]
        marks = tuple(sorted((Mark(**m).check(classes) for m in values["marks"]), key=_order))
        return cls(str(values["fingerprint"]), classes, marks)

    def digest(self) -> str:
        """A digest of the content: equal digests, equal curation."""
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _order(mark: Mark) -> tuple[int, int]:
    return CURATED_SPLITS.index(mark.split), mark.index


def describe_counts(counts: dict[str, int]) -> str:
    """'3 relabelled, 2 excluded' (what training changes)."""
    return f"{counts['relabelled']} relabelled, {counts['excluded']} excluded"


# -- the marks file of a data source ---------------------------------------------------------------


def source_key(data: DataConfig) -> str:
    """The name of a data source's marks file: a digest of what decides which image is which."""
    path = str(Path(data.path).expanduser().resolve()) if data.path else None
    named = [data.source, path, data.validation_fraction, data.test_fraction, data.seed]
    return hashlib.sha256(json.dumps(named).encode()).hexdigest()[:24]


def marks_path(workspace: Path, data: DataConfig) -> Path:
    return Path(workspace) / FOLDER / f"{source_key(data)}.json"


def read_marks(workspace: Path, data: DataConfig) -> Curation | None:
    """The marks saved for `data`'s source, or None when there are none.

    PetLabError when the file is damaged (clear_marks removes it).
    """
    path = marks_path(workspace, data)
    if not path.is_file():
        return None
    try:
        return Curation.from_json(read_json(path))
    except (OSError, ValueError, KeyError, TypeError, PetLabError):
        raise PetLabError(
            f"The saved label marks of this dataset ({path.name}) cannot be read; clear them on the "
            "Label issues page and mark again."
        ) from None


def save_mark(workspace: Path, data: DataConfig, base: Curation, mark: Mark) -> Curation:
    """Save `mark` in `data`'s marks file, replacing any earlier mark of the image; returns all marks.

    `base` is an empty Curation of the data the person sees (its fingerprint and classes): marks
    saved earlier for another version of the data (another fingerprint) are replaced, not mixed in.
    """
    return _update(workspace, data, base, lambda current: current.with_mark(mark))


def remove_mark(workspace: Path, data: DataConfig, base: Curation, split: str, index: int) -> Curation:
    """Forget the mark of one image (as save_mark); returns the marks left."""
    return _update(workspace, data, base, lambda current: current.without(split, index))


def _update(workspace: Path, data: DataConfig, base: Curation, change) -> Curation:
    with _locked(workspace, data):
        updated = change(_current(workspace, data, base))
        atomic_write_json(marks_path(workspace, data), updated.to_json())
        return updated


def _current(workspace: Path, data: DataConfig, base: Curation) -> Curation:
    try:
        saved = read_marks(workspace, data)
    except PetLabError:
        saved = None  # a damaged file is replaced by the marks made now
    if saved is None or saved.fingerprint != base.fingerprint or saved.classes != base.classes:
        return dataclasses.replace(base, marks=())
    return saved


def clear_marks(workspace: Path, data: DataConfig) -> None:
    """Remove every mark saved for `data`'s source."""
    with _locked(workspace, data):
        marks_path(workspace, data).unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(workspace: Path, data: DataConfig) -> Iterator[None]:
    """One writer at a time for a marks file (two browser tabs may mark at once)."""
    lock = marks_path(workspace, data).with_suffix(".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# -- snapshots: what a queued run trains on --------------------------------------------------------


def snapshot_path(workspace: Path, digest: str) -> Path:
    return Path(workspace) / FOLDER / SNAPSHOTS / f"{digest}.json"


def take_snapshot(workspace: Path, data: DataConfig) -> str | None:
    """Freeze the marks of `data`'s source that change training; returns their digest, or None for none.

    A damaged marks file fails the request (PetLabError) rather than training on uncurated data silently.
    """
    current = read_marks(workspace, data)
    if current is None or not current.changing():
        return None
    frozen = dataclasses.replace(current, marks=current.changing())
    digest = frozen.digest()
    path = snapshot_path(workspace, digest)
    if not path.is_file():  # immutable: the same content has the same name
        atomic_write_json(path, frozen.to_json())
    return digest


def load_snapshot(workspace: Path, digest: str) -> Curation:
    """The curation a run was queued with; NotFoundError when its snapshot is gone."""
    path = snapshot_path(workspace, digest)
    try:
        return Curation.from_json(read_json(path))
    except FileNotFoundError:
        raise NotFoundError(
            f"The label curation {digest} this run was queued with is gone from {path.parent}; "
            "queue the run again."
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PetLabError(
            f"The label curation {digest} cannot be read ({type(exc).__name__}); queue the run again."
        ) from None
