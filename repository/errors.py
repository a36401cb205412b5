"""The one error hierarchy of nbarchive.

Services raise these; the DRF exception handler (repository/api/exception_handler.py) renders them as
`application/problem+json` (RFC 9457) and the web views turn them into form errors. Each has a stable `code`
that clients can rely on, and `field_errors` maps a field path (e.g. `creators[0].orcid`) to messages.
"""


class NbarchiveError(Exception):
    status = 400
    code = "error"
    title = "Request failed"

    def __init__(self, detail: str = "", *, field_errors: dict[str, list[str]] | None = None):
        self.detail = detail or self.title
        self.field_errors = field_errors or {}
        super().__init__(self.detail)


class InvalidInput(NbarchiveError):
    status = 400
    code = "invalid"
    title = "The input is not valid"


class InvalidNotebook(InvalidInput):
    code = "invalid_notebook"
    title = "The notebook is not valid"


class NotFound(NbarchiveError):
    status = 404
    code = "not_found"
    title = "Not found"


class PermissionDenied(NbarchiveError):
    status = 403
    code = "permission_denied"
    title = "You may not do this"


class Conflict(NbarchiveError):
    status = 409
    code = "conflict"
    title = "The request conflicts with the current state"


class PayloadTooLarge(NbarchiveError):
    status = 413
    code = "too_large"
    title = "Too large"


class StorageUnavailable(NbarchiveError):
    status = 503
    code = "storage_unavailable"
    title = "File storage is not available; nothing was saved, please try again"


class TooManyRequests(NbarchiveError):
    status = 429
    code = "too_many_requests"
    title = "Too many requests"


class StorageError(StorageUnavailable):
    """The object store failed or refused a request: the S3 SDK's errors as repository/integrations/s3/client.py
    translates them (nothing outside that door catches the SDK's own types). `detail` says what was being done
    and what the store answered, for logs and reports; a service answering a client re-raises a plain
    StorageUnavailable, whose title is what the client reads."""

    code = "storage_error"
    title = "File storage failed the request"

    def __init__(self, detail: str = "", *, answer: str = "", **kwargs):
        super().__init__(detail, **kwargs)
        # What the store itself said, one line (S3's code and message, or the SDK's own message), for callers that
        # word their own message around it.
        self.answer = answer or self.detail


class ObjectMissing(StorageError):
    """The object (or its bucket) is not in the object store."""

    code = "object_missing"
    title = "The object is missing from file storage"


class BucketMissing(ObjectMissing):
    """The bucket itself is not in the object store."""

    code = "bucket_missing"
    title = "The bucket is missing from file storage"


class StorageRefused(StorageError):
    """The object store answered with an error that no narrower class names (AccessDenied, SlowDown, ...). A plain
    StorageError is one where it did not answer: no connection, a timeout, no credentials, retries spent."""

    code = "storage_refused"
    title = "File storage refused the request"


class ObjectArchived(StorageRefused):
    """The object is in an archive storage class (GLACIER, DEEP_ARCHIVE) and not restored: it cannot be read yet."""

    code = "object_archived"
    title = "The object is in cold storage and must be restored first"


class ObjectExists(StorageRefused):
    """A write that must not overwrite found the object already there."""

    code = "object_exists"
    title = "The object already exists in file storage"


class StorageChecksumMismatch(StorageUnavailable):
    """The bytes storage holds are not the bytes that were streamed (S3's SHA-256 differs from ours)."""

    code = "storage_checksum_mismatch"
    title = "File storage holds different bytes than were sent; nothing was saved, please try again"


class ProtectedObject(Conflict):
    """A storage object that a file of an accepted version uses: it is never deleted or overwritten."""

    code = "protected_object"
    title = "This object belongs to a published version and is never deleted"
