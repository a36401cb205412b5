"""The SHA-256 and MD5 of a stream read once, front to back, the two digests running side by side.

A direct upload's check reads the whole object back (gigabytes) and needs both digests. MD5 is the slower of the
two by far (about 0.8 GB/s against SHA-256's 2 GB/s with the CPU's SHA instructions); hashlib lets go of the GIL
on large buffers, so the MD5 runs on a thread of its own while the reading thread reads and takes the SHA-256:
the check takes about as long as the MD5 alone instead of the sum of both.
"""

import hashlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

PIECE = 4 * 1024**2  # large reads: less of the HTTP client's Python code per byte (4 MiB: a third less than 1 MiB)
MD5_BACKLOG = 2  # pieces the MD5 thread may lag behind; bounds the memory held to (2 + 1) x PIECE


@dataclass(frozen=True)
class StreamDigests:
    sha256: str
    md5: str
    size: int


def stream_digests(stream, piece: int = PIECE) -> StreamDigests:
    """Read `stream` to its end; its SHA-256 and MD5 (hex) and its length."""
    sha256, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    md5_pending: deque = deque()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="md5") as md5_thread:
        try:
            while data := stream.read(piece):
                if len(md5_pending) == MD5_BACKLOG:
                    md5_pending.popleft().result()
                md5_pending.append(md5_thread.submit(md5.update, data))
                sha256.update(data)
                size += len(data)
        finally:
            while md5_pending:
                md5_pending.popleft().result()
    return StreamDigests(sha256=sha256.hexdigest(), md5=md5.hexdigest(), size=size)
