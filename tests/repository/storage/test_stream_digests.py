"""The upload check's digests (MD5 on a thread of its own): the same as hashing the bytes in order, whatever the
number of pieces the MD5 thread lags behind."""

import hashlib
import io

import pytest

from repository.stream_digests import MD5_BACKLOG, stream_digests

PIECE = 4096


@pytest.mark.parametrize("size", [0, 1, PIECE, (MD5_BACKLOG * 3 + 1) * PIECE + 5])
def test_sha256_md5_and_size_of_a_stream(size):
    data = bytes((n * 31) % 253 for n in range(size))

    found = stream_digests(io.BytesIO(data), piece=PIECE)

    assert (found.sha256, found.md5, found.size) == (
        hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest(), size)
