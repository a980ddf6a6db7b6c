"""Errors a person can act on.

Every PetLabError carries one sentence that says what happened and what to do.
The command line prints it on one line and exits 2 for bad input (a BadInputError,
like a usage error) and 1 for any other failure. Messages never contain a traceback.

Where the remedy is a command-line flag (`--path`, `--weights none`), the error also
carries the sentence in the dashboard's words ("choose the folder in the sidebar"),
which the dashboard shows instead (`in_dashboard_words`).
"""

from __future__ import annotations


class PetLabError(Exception):
    """A failure explained in one sentence for the person using PetLab.

    `dashboard` is the same sentence for a person in the dashboard, when the remedy differs
    there (a sidebar setting instead of a flag); without it both read the same.
    """

    def __init__(self, message: str = "", *, dashboard: str | None = None) -> None:
        super().__init__(message)
        self.dashboard = dashboard


def in_dashboard_words(error: BaseException | str) -> str:
    """The sentence a dashboard shows for `error`: its dashboard wording when it has one."""
    return getattr(error, "dashboard", None) or str(error)


class BadInputError(PetLabError):
    """The request itself is wrong: a bad argument, a missing file, an unknown name."""


class NotFoundError(BadInputError):
    """A run, file or dataset that was asked for does not exist."""


class BadImageError(BadInputError):
    """A file could not be read as an image."""


class OfflineError(PetLabError):
    """Something had to be downloaded and the network is not reachable."""


class RunCancelled(PetLabError):
    """A training run was stopped on request."""
