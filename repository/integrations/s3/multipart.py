"""Direct multipart uploads to an S3 "blobs" storage: the client sends the parts itself, to presigned URLs.

The application begins the upload (CreateMultipartUpload asking for SHA-256 checksums), signs an UploadPart URL per
part with the part's SHA-256 as a signed header (S3 refuses a part whose bytes do not hash to it: BadDigest, and a
request that sends another value than the signed one), lists the parts S3 holds (ListParts: a client resuming
days later sends only the others), completes (CompleteMultipartUpload) or aborts. It never sees the bytes.

Built on the door's `Bucket.request` and `presigned_url` (client.py); errors are StorageError and its kinds. Names
are storage names, as everywhere in this package.
"""

from dataclasses import dataclass

from repository.errors import ObjectMissing
from repository.integrations.s3.client import S3Storage, bucket_of, presigned_url, storage_key, upload_parameters


@dataclass(frozen=True)
class ReceivedPart:
    number: int
    size: int
    etag: str
    # base64, as S3 reports it; None from an endpoint that keeps no per-part checksum
    sha256: str | None


def begin(storage: S3Storage, name: str) -> str:
    """CreateMultipartUpload for `name`, every part to carry a SHA-256 checksum; return S3's UploadId."""
    answer = bucket_of(storage).request("create_multipart_upload", Key=storage_key(storage, name),
                                        ChecksumAlgorithm="SHA256", what=f"beginning the upload of {name}",
                                        **upload_parameters(storage, name))
    return answer["UploadId"]


def part_url(storage: S3Storage, name: str, upload_id: str, *, number: int, sha256_b64: str, ttl: int) -> str:
    """A presigned UploadPart URL for part `number`; the PUT must send `x-amz-checksum-sha256: <sha256_b64>`."""
    return presigned_url(storage, "upload_part", {
        "Key": storage_key(storage, name), "UploadId": upload_id, "PartNumber": number,
        "ChecksumSHA256": sha256_b64}, ttl=ttl, what=f"signing part {number} of {name}")


def received_parts(storage: S3Storage, name: str, upload_id: str) -> list[ReceivedPart]:
    """The parts S3 holds for the upload (ListParts, every page), by number. ObjectMissing (NoSuchUpload) when the
    upload was completed or aborted."""
    bucket, key = bucket_of(storage), storage_key(storage, name)
    parts, marker = [], 0
    while True:
        page = bucket.request("list_parts", Key=key, UploadId=upload_id, PartNumberMarker=marker,
                              what=f"listing the parts of {name}")
        parts += [ReceivedPart(number=item["PartNumber"], size=item["Size"], etag=item["ETag"],
                               sha256=item.get("ChecksumSHA256")) for item in page.get("Parts", [])]
        if not page.get("IsTruncated"):
            return parts
        marker = page["NextPartNumberMarker"]


def complete(storage: S3Storage, name: str, upload_id: str, parts: list[ReceivedPart]) -> None:
    """CompleteMultipartUpload with `parts` (in order), each with the checksum S3 reported for it."""
    listed = [{"PartNumber": part.number, "ETag": part.etag,
               **({"ChecksumSHA256": part.sha256} if part.sha256 else {})} for part in parts]
    bucket_of(storage).request("complete_multipart_upload", Key=storage_key(storage, name), UploadId=upload_id,
                               MultipartUpload={"Parts": listed}, what=f"completing the upload of {name}")


def abort(storage: S3Storage, name: str, upload_id: str) -> None:
    """AbortMultipartUpload: S3 deletes the parts. One already gone (NoSuchUpload) counts as aborted."""
    try:
        bucket_of(storage).abort_upload(storage_key(storage, name), upload_id, what=f"aborting the upload of {name}")
    except ObjectMissing:
        pass
