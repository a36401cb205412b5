"""S3, through boto3 and django-storages. What is where:

- `client.py` is the door: the only module of the project that imports boto3, botocore, s3transfer or
  django-storages' S3 backend. Every call into them is made there, and their errors leave it as ours
  (repository/errors.py: StorageError and its kinds ObjectMissing, BucketMissing, ObjectArchived, ObjectExists,
  StorageRefused). It holds `S3Storage` (the "blobs" and "backup" storage backend), `Bucket` (a method per S3
  request or managed transfer) with `bucket_of(storage)` and `connect()`, and `STORAGE_ERRORS`, what code outside
  catches when a storage operation fails.
- `objects.py`: what repository/storage.py needs of an S3 "blobs" storage beyond the Storage API (a checksummed
  streamed upload, the checksum S3 reports, a copy that never overwrites, a streamed read, old temporary objects
  and unfinished uploads), built on `Bucket`.
- `multipart.py`: direct multipart uploads whose parts a client sends itself to presigned UploadPart URLs (begin,
  sign a part for its SHA-256, list the parts received, complete, abort); used by repository/upload_storage.py.

The backup tier's bucket is repository/backup/s3_target.py, also built on `Bucket`. Import what you need from this
package: `from repository.integrations import s3`, then `s3.upload(...)`, `s3.connect(...)`.
"""

from repository.integrations.s3.client import (
    STORAGE_ERRORS,
    Bucket,
    ObjectStream,
    S3File,
    S3Storage,
    bucket_of,
    connect,
    is_s3,
    presigned_get_url,
    upload_part_size,
)
from repository.integrations.s3.objects import (
    ObjectInfo,
    abort_uploads_older_than,
    b64_sha256,
    copy_new,
    object_info,
    objects_older_than,
    open_stream,
    upload,
)

__all__ = [
    "STORAGE_ERRORS", "Bucket", "ObjectInfo", "ObjectStream", "S3File", "S3Storage",
    "abort_uploads_older_than", "b64_sha256", "bucket_of", "connect", "copy_new", "is_s3", "object_info",
    "objects_older_than", "open_stream", "presigned_get_url", "upload", "upload_part_size",
]
