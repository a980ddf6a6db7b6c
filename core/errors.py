"""Errors a person can act on.

Every PetLabError carries one sentence that says what happened and what to do.
The command line prints it on one line and exits 2 for bad input (a BadInputError,
like a usage error) and 1 for any other failure; the dashboard shows it as is.
Messages never contain a traceback.
"""


class PetLabError(Exception):
    """A failure explained in one sentence for the person using PetLab."""


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
