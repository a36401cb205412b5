"""moto's S3 server with the one check of real S3 that direct uploads rely on and moto 5 leaves out.

S3 refuses an UploadPart whose bytes do not hash to the `x-amz-checksum-sha256` it was sent (and signed) with:
400 BadDigest, nothing stored. moto stores the part whatever it hashes to. This starts moto's server (same
arguments as `python -m moto.server`) with that check added, and nothing else changed, so the tests of
presigned part uploads meet the behaviour of the real store.
"""

import base64
import hashlib
import sys
from urllib.parse import parse_qs, urlparse

from moto.s3 import responses
from moto.s3.exceptions import S3ClientError


class BadDigest(S3ClientError):
    code = "BadDigest"

    def __init__(self):
        super().__init__("BadDigest", "The SHA256 you specified did not match the calculated checksum.")


_upload_part = responses.S3Response.upload_part


def upload_part(self):
    claimed = self.headers.get("x-amz-checksum-sha256")
    if not claimed:  # a presigned URL may carry it in its query instead
        claimed = parse_qs(urlparse(self.uri).query).get("x-amz-checksum-sha256", [None])[0]
    if claimed and base64.b64encode(hashlib.sha256(self.body).digest()).decode("ascii") != claimed:
        raise BadDigest()
    return _upload_part(self)


responses.S3Response.upload_part = upload_part

if __name__ == "__main__":
    from moto.server import main

    sys.exit(main(sys.argv[1:]))
