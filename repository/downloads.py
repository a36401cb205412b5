"""The HTTP response that hands out a blob's bytes, shared by the public download view and the API.

S3: a 302 redirect to a presigned GET URL valid for S3_PRESIGNED_TTL seconds that makes the browser save the file
under its name; the bytes never pass through the application. A local directory: the application streams the file,
with `Accept-Ranges: bytes` and one byte range per request (206 with Content-Range; 416 when the range lies beyond
the end). A request for several ranges, an unparsable Range or an If-Range that does not match gets the whole file
(RFC 9110 lets a server ignore Range), so clients resume downloads without the server assembling multipart bodies.
Callers add their own headers (Digest, Link) to whichever response comes back.
"""

import re

from django.http import FileResponse, HttpResponse, HttpResponseRedirect

from repository import storage
from repository.models import Blob

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
# Past any file's size; also keeps int() away from digit strings longer than Python converts (4,300 digits).
_FAR_BEYOND = 10**18


class _Unsatisfiable(Exception):
    pass


def blob_download_response(request, blob: Blob, *, filename: str) -> HttpResponse:
    url = storage.download_url(blob.storage_key, filename=filename)
    if url is not None:
        response = HttpResponseRedirect(url)
        response["Cache-Control"] = "private, no-store"  # the URL expires; a cached redirect would not
        return response
    etag = f'"{blob.sha256}"'
    try:
        byte_range = _requested_range(request, size=blob.size, etag=etag)
    except _Unsatisfiable:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{blob.size}"
        response["Accept-Ranges"] = "bytes"
        return response
    handle = storage.open_blob(blob.storage_key)
    if byte_range is None:
        response = FileResponse(handle, as_attachment=True, filename=filename, content_type="application/octet-stream")
        response["Content-Length"] = str(blob.size)
    else:
        start, end = byte_range
        handle.seek(start)
        response = FileResponse(_Slice(handle, end - start + 1), status=206, as_attachment=True, filename=filename,
                                content_type="application/octet-stream")
        response["Content-Length"] = str(end - start + 1)
        response["Content-Range"] = f"bytes {start}-{end}/{blob.size}"
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = etag  # the content never changes under a sha256, so If-Range can rely on it
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _position(digits: str) -> str:
    """A byte position as the header gave it, or one far past any file when it has more digits than a size can."""
    return str(_FAR_BEYOND) if len(digits) > len(str(_FAR_BEYOND)) else digits


def _requested_range(request, *, size: int, etag: str) -> tuple[int, int] | None:
    """(first, last) byte of a single satisfiable range; None for the whole file; raises _Unsatisfiable."""
    header = request.META.get("HTTP_RANGE", "").strip()
    if not header:
        return None
    if_range = request.META.get("HTTP_IF_RANGE", "").strip()
    if if_range and if_range != etag:
        return None
    match = _RANGE.match(header.replace(" ", ""))
    if match is None:  # several ranges, another unit, or nonsense
        return None
    first, last = (_position(text) for text in match.groups())
    if not first and not last:
        return None
    if not first:  # the last N bytes
        suffix = int(last)
        if suffix == 0:
            raise _Unsatisfiable()
        return max(size - suffix, 0), size - 1
    start = int(first)
    end = size - 1 if not last else min(int(last), size - 1)
    if last and int(last) < start:
        return None  # an invalid range is ignored
    if start >= size:
        raise _Unsatisfiable()
    return start, end


class _Slice:
    """At most `length` bytes of an open file, from where it stands; closing it closes the file. It has no
    fileno(), so a WSGI server cannot sendfile() past the end of the range."""

    def __init__(self, handle, length: int):
        self._handle = handle
        self._remaining = length

    def read(self, size: int = -1) -> bytes:
        if self._remaining <= 0:
            return b""
        size = self._remaining if size is None or size < 0 else min(size, self._remaining)
        data = self._handle.read(size)
        self._remaining -= len(data)
        return data

    def close(self) -> None:
        self._handle.close()
