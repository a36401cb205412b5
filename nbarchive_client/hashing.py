"""The hashes an upload declares before its first byte is sent, taken in one read of the file.

The protocol wants the whole file's SHA-256 when the upload begins, and each part's SHA-256 when its URL is
signed (the object store checks it). Both come from one pass over the file: the file is read ahead into a few
reused buffers, one thread keeps the running digest of the whole file (it must see the bytes in order) and
another hashes each part. hashlib lets go of the GIL on buffers this large, so on two cores the pass takes about
as long as a single SHA-256 of the file.
"""

import base64
import hashlib
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

READ_AHEAD = 3  # part-sized buffers being hashed while the next is read


@dataclass
class Hashes:
    sha256: str
    parts: list[str]  # base64, as in x-amz-checksum-sha256


def b64_sha256(data) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def read_exactly(fd: int, buffer: memoryview, offset: int) -> int:
    """Fill `buffer` from `offset` of the file (fewer bytes only at its end); return how many were read."""
    filled = 0
    while filled < len(buffer):
        got = os.preadv(fd, [buffer[filled:]], offset + filled)
        if not got:
            break
        filled += got
    return filled


def hash_file(path: Path, part_size: int, progress=None) -> Hashes:
    """The file's SHA-256 (hex) and the SHA-256 of each of its `part_size` parts (base64), from one read."""
    whole, parts = hashlib.sha256(), []
    buffers = [memoryview(bytearray(part_size)) for _ in range(READ_AHEAD)]
    in_flight: deque = deque()

    def settle_oldest() -> None:
        whole_done, part_digest, length = in_flight.popleft()
        whole_done.result()
        parts.append(part_digest.result())
        if progress is not None:
            progress.update(length)

    with open(path, "rb", buffering=0) as handle, ThreadPoolExecutor(max_workers=1) as whole_pool, \
            ThreadPoolExecutor(max_workers=1) as part_pool:
        offset = 0
        while True:
            if len(in_flight) == READ_AHEAD:  # the buffer about to be filled again must be hashed by both first
                settle_oldest()
            buffer = buffers[(len(parts) + len(in_flight)) % READ_AHEAD]  # the next chunk's number, modulo
            length = read_exactly(handle.fileno(), buffer, offset)
            if not length:
                break
            chunk = buffer[:length]
            in_flight.append((whole_pool.submit(whole.update, chunk), part_pool.submit(b64_sha256, chunk), length))
            offset += length
        while in_flight:
            settle_oldest()
    return Hashes(sha256=whole.hexdigest(), parts=parts)
