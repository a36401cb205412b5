"""HashingReader: an upload's request stream read once, front to back, hashed and counted on the way.

repository/storage.py streams uploads through it to storage: the sha256 and md5 it took are what the Blob row
records, and its per-part SHA-256 digests let storage.py check an S3 multipart object's composite checksum.
"""

import hashlib
import io

from repository.errors import InvalidInput, PayloadTooLarge


class HashingReader(io.RawIOBase):
    """A read-only, non-seekable view of a stream that hashes and counts what passes through.

    It raises PayloadTooLarge as soon as more than `max_size` bytes arrive, and InvalidInput when the stream
    ends before `expected_size` bytes (a client that disconnected mid-upload). Being non-seekable matters:
    storage backends then read it once, front to back, and the hashes stay right. With `part_size` it also
    keeps the SHA-256 of every `part_size` bytes, to check an S3 multipart object's composite checksum.
    """

    def __init__(self, stream, *, max_size: int, expected_size: int | None = None, tee=None,
                 part_size: int | None = None):
        self._stream = stream
        self._max_size = max_size
        self._expected_size = expected_size
        self._tee = tee
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0
        self._part_size = part_size
        self._part = hashlib.sha256()
        self._part_filled = 0
        self._part_digests: list[bytes] = []

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    # The request stream is read in pieces of at most this size, however much the caller asks for. boto3 asks
    # for a whole part (8-16 MiB) at once; gunicorn answers a large read by growing a BytesIO to that size and
    # copying it twice more, and those part-sized temporary buffers cost CPU and leave glibc's heap fragmented.
    # Pieces are hashed while still in the CPU cache and joined once.
    READ_PIECE = 1024 * 1024

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = None
        if self._expected_size is not None:
            remaining = self._expected_size - self.size
            if remaining <= 0:
                return b""
            size = remaining if size is None else min(size, remaining)
        pieces = []
        wanted = size
        while wanted is None or wanted > 0:
            piece = self._read_piece(self.READ_PIECE if wanted is None else min(self.READ_PIECE, wanted))
            if not piece:
                break
            pieces.append(piece)
            if wanted is not None:
                wanted -= len(piece)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _read_piece(self, size: int) -> bytes:
        try:
            data = self._stream.read(size)
        except Exception as exc:  # the WSGI server's own error for a dropped connection varies by server
            raise InvalidInput(f"The upload was interrupted after {self.size} bytes; nothing was saved.") from exc
        if not data:
            if self._expected_size is not None and self.size < self._expected_size:
                raise InvalidInput(
                    f"The upload ended after {self.size} of {self._expected_size} bytes; nothing was saved."
                )
            return b""
        self.size += len(data)
        if self.size > self._max_size:
            raise PayloadTooLarge(f"The file is larger than the limit of {self._max_size} bytes.")
        self.sha256.update(data)
        self.md5.update(data)
        if self._part_size:
            self._hash_parts(data)
        if self._tee is not None:
            self._tee.write(data)
        return data

    def _hash_parts(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            take = view[: self._part_size - self._part_filled]
            self._part.update(take)
            self._part_filled += len(take)
            view = view[len(take):]
            if self._part_filled == self._part_size:
                self._part_digests.append(self._part.digest())
                self._part = hashlib.sha256()
                self._part_filled = 0

    def composite_sha256(self) -> bytes:
        """SHA-256 over the SHA-256 digests of the `part_size` parts: S3's composite checksum of the same parts."""
        digests = self._part_digests + ([self._part.digest()] if self._part_filled else [])
        return hashlib.sha256(b"".join(digests)).digest()
