""""Download all": a published version as one RO-Crate zip, streamed.

The zip is written while it is sent: `zipstream-ng` emits each member's header, then its bytes as they are read
from storage (local directory or S3, through repository.storage, 1 MiB at a time), then the central directory.
Nothing is held whole in memory or on disk, so a version of any size downloads with flat memory. Members are
stored, not compressed (notebooks' images and data files are mostly compressed already), which also lets the
response carry an exact Content-Length computed before the first byte is read.
"""

from django.http import Http404, StreamingHttpResponse
from django.views.decorators.http import require_safe
from zipstream import ZIP_STORED, ZipStream

from repository import selectors, storage
from repository.access.http import request_can_read_files
from repository.access.serving import files_cache_control, files_closed_response
from repository.errors import NotFound
from repository.exports.rocrate import METADATA_NAME, crate_metadata_json
from repository.models import UsageEvent, Version
from repository.services.usage import usage_record

CHUNK_SIZE = 1024 * 1024


def crate_filename(version: Version) -> str:
    return f"{version.record.public_id}-v{version.number}.zip"


def _blob_chunks(storage_key: str):
    """A blob's bytes, opened only when the zip reaches this member and closed after it."""
    with storage.open_blob_stream(storage_key) as handle:
        while chunk := handle.read(CHUNK_SIZE):
            yield chunk


def version_zip(version: Version) -> ZipStream:
    archive = ZipStream(compress_type=ZIP_STORED, sized=True)
    archive.add(crate_metadata_json(version), METADATA_NAME)
    for version_file in sorted(version.files.all(), key=lambda f: f.path):
        archive.add(_blob_chunks(version_file.blob.storage_key), version_file.path, size=version_file.blob.size)
    return archive


@require_safe
def version_crate_download(request, record_id, number):
    try:
        version, _ = selectors.version_get_public(record_id=record_id, number=number)
    except NotFound as exc:
        raise Http404(exc.detail) from None
    if version.state == Version.State.WITHDRAWN:
        raise Http404("This version was withdrawn; its files are no longer served.")
    if not request_can_read_files(request, version):
        return files_closed_response(request, version)
    version = selectors.draft_with_details(version)
    archive = version_zip(version)
    response = StreamingHttpResponse(archive, content_type="application/zip")
    response["Content-Length"] = str(len(archive))
    response["Content-Disposition"] = f'attachment; filename="{crate_filename(version)}"'
    response["Cache-Control"] = files_cache_control(version)
    response["X-Content-Type-Options"] = "nosniff"
    usage_record(request, version, UsageEvent.Kind.DOWNLOAD, target="zip")
    return response
