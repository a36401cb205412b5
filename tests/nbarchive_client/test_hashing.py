"""The one-pass hashing the client declares before sending: the same digests as hashing the file plainly, for
files whose parts outnumber the reused buffers and whose last part is short, one byte long or full."""

import base64
import hashlib

import pytest

from nbarchive_client.hashing import READ_AHEAD, hash_file

PART = 64 * 1024


@pytest.mark.parametrize("size", [1, PART - 1, PART, PART + 1, (READ_AHEAD * 2 + 1) * PART + 7])
def test_one_read_gives_the_file_and_part_digests(tmp_path, size):
    data = bytes((n * 7919) % 251 for n in range(size))
    path = tmp_path / "data.bin"
    path.write_bytes(data)

    hashes = hash_file(path, PART)

    assert hashes.sha256 == hashlib.sha256(data).hexdigest()
    assert hashes.parts == [base64.b64encode(hashlib.sha256(data[start:start + PART]).digest()).decode()
                            for start in range(0, size, PART)]
