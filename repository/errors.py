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


class InvalidImageReference(InvalidInput):
    """A container image reference that is not `registry/name@sha256:<64 hex>` (a tag, no registry, bad digest)."""

    code = "invalid_image_reference"
    title = "The image must be named as registry/name@sha256:<64 hex digits>"


class ImageUnavailable(NbarchiveError):
    """The pinned image could not be made ready on this worker. It is the operator's problem (registry, network,
    credentials, tools, limits), never the notebook's verdict; `retryable` says whether trying later can help."""

    status = 503
    code = "image_unavailable"
    title = "The container image could not be made ready"
    retryable = True


class ImageNotFound(ImageUnavailable):
    code = "image_not_found"
    title = "The registry does not have this image"


class ImageAccessDenied(ImageUnavailable):
    code = "image_access_denied"
    title = "The registry refused access to this image (credentials missing or wrong)"


class ImageRegistryUnreachable(ImageUnavailable):
    code = "image_registry_unreachable"
    title = "The image registry could not be reached"


class ImagePullTimeout(ImageUnavailable):
    code = "image_pull_timeout"
    title = "Pulling the image took longer than allowed"


class ImageToolsMissing(ImageUnavailable):
    code = "image_tools_missing"
    title = "skopeo and umoci are needed to pull and unpack images"


class ImageDigestMismatch(ImageUnavailable):
    """The registry served bytes whose digest is not the pinned one: never run them, and do not retry at once."""

    code = "image_digest_mismatch"
    title = "The registry served an image whose digest is not the pinned one"
    retryable = False


class ImageTooLarge(ImageUnavailable):
    """The image is larger than a configured limit (the message names it); retrying cannot help."""

    status = 413
    code = "image_too_large"
    title = "The image is larger than this archive accepts"
    retryable = False
