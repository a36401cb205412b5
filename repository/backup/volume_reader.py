"""Reading a volume back front to back (restore): `tarfile` in streaming mode over a stream that hashes what the
tar reader consumes, so the whole volume's size and sha256 are known once its members were read.
"""

import hashlib
import io
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

PIECE = 1024 * 1024


class HashingStream(io.RawIOBase):
    """Reads from `stream`, hashing and counting everything the reader consumes."""

    def __init__(self, stream, progress: Callable[[int], None] | None = None):
        self._stream = stream
        self._progress = progress
        self.sha256 = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        self.sha256.update(data)
        self.size += len(data)
        if self._progress is not None and data:
            self._progress(len(data))
        return len(data)

    def drain(self) -> None:
        while self.read(PIECE):
            pass


@dataclass(frozen=True)
class VolumeMember:
    name: str
    size: int
    is_file: bool
    reader: object  # read(n) over the member's contents (only while the iteration stands on it)


def read_volume(stream, progress: Callable[[int], None] | None = None) -> tuple[HashingStream, Iterator[VolumeMember]]:
    """Iterate over a volume's members front to back. After the iteration (and `drain()`), the HashingStream
    holds the whole volume's size and sha256. Raises tarfile.TarError on a damaged volume."""
    hashing = HashingStream(stream, progress)
    buffered = io.BufferedReader(hashing, buffer_size=PIECE)

    def members() -> Iterator[VolumeMember]:
        # The default 10 KiB stream buffer: a larger one is re-sliced on every 512-byte header read.
        with tarfile.open(fileobj=buffered, mode="r|") as archive:
            for info in archive:
                reader = archive.extractfile(info) if info.isfile() else None
                yield VolumeMember(info.name, info.size, info.isfile(), reader)
        # tarfile stops at the end-of-archive blocks; the record padding after them is part of the volume.
        while buffered.read(PIECE):
            pass

    return hashing, members()
