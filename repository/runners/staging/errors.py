"""The one error staging raises, and the helpers that keep its message to one readable line.

Every failure of staging, whatever its cause (a path, a checksum, our storage, the disk, the network, a remote
server), is a ``StagingError``: an ``NbarchiveError`` with a stable code whose one-line message names the file or
reference, says what is wrong and what to do. Text that comes from servers or exceptions goes through ``clip``.
"""

from repository.errors import NbarchiveError, StorageUnavailable

MAX_MESSAGE_TEXT = 200


class StagingStorageUnavailable(StorageUnavailable):
    """Our own storage failed while staging (down, or bytes we hold are unreadable): the operator's problem, so
    the run is retried and, if it keeps failing, ends `error`; never a verdict on the notebook."""


class StagingError(NbarchiveError):
    """Staging failed; `reference_label` names the file or reference, `message` says what is wrong and what to do."""

    status = 422
    code = "staging_failed"
    title = "The notebook's inputs could not be staged"

    def __init__(self, reference_label: str, message: str):
        self.reference_label = reference_label
        self.message = message
        super().__init__(one_line(f"{reference_label}: {message}"))


def clip(value) -> str:
    """Text from servers and exceptions, made safe for a one-line message."""
    return one_line(str(value))[:MAX_MESSAGE_TEXT]


def one_line(text: str) -> str:
    return " ".join(text.split())
