"""Writing tar volumes (volume_format.py says what they look like) member by member into a seekable file.

Writing does not go through `tarfile.TarFile`: its streaming mode re-slices its buffer for every 10 KiB record
(quadratic in the piece size) and it cannot take a member back. `VolumeWriter` writes headers made by
`tar_header`, the contents and the end-of-archive blocks, so any `tar` reads the result. It hashes the whole
volume and each member as the bytes pass, and records where each member's contents start, so the fixity check
can read one member with a ranged read. A member whose source turns out short or corrupt is taken back
(`rollback`): the file is truncated to where the member began and the volume hash is restored to its state there.

Speed: the two SHA-256 (the member's, to check it against its Blob row, and the volume's) are the work; a
background thread hashes the volume and writes while the caller reads and hashes the member, in 256 KiB pieces
that stay in the CPU cache, and a local volume is pushed to disk as it grows (flush-behind) so the fsync at the
end has little to wait for. Memory: a handful of pieces, whatever the file sizes (tests/bench/backup.py).
"""

import collections
import hashlib
import io
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from repository.backup.volume_format import BLOCK, RECORD, padded, tar_header

# Contents are copied in pieces that stay in the CPU's cache between being read, hashed twice and written: with
# 1 MiB pieces the copy alone runs at half the speed (measured: 512 MiB page cache to page cache, 0.21 s in
# 256 KiB pieces, 0.5-0.8 s in 1 MiB ones).
WRITE_PIECE = 256 * 1024


class SourceMismatch(Exception):
    """The source delivered other bytes than announced: too few, or not the expected sha256."""


class SourceError(Exception):
    """Reading the source failed (its error is the __cause__). Errors writing the volume are not wrapped."""


@dataclass(frozen=True)
class WrittenMember:
    name: str
    header_offset: int
    data_offset: int
    size: int
    sha256: str


class _BackgroundWriter:
    """Hashes (the volume's sha256) and writes, in order, everything put into its queue, in a thread of its own:
    the caller meanwhile reads and hashes what comes next (hashlib and file I/O release the GIL, so a backup
    uses two cores). A `mark()` in the queue records the volume hash at that point, for a rollback. At most
    QUEUE_DEPTH items wait; an error is raised in the caller's thread at its next call."""

    QUEUE_DEPTH = 8
    FLUSH_STEP = 32 * 1024 * 1024
    _MARK = object()

    def __init__(self, out, *, flush_behind: bool = False):
        self._out = out
        self.sha256 = hashlib.sha256()
        self.marked = None  # the hash state at the last mark
        self._queue = queue.Queue(maxsize=self.QUEUE_DEPTH)
        self._thread = None
        self._error = None
        # Flush-behind: every FLUSH_STEP bytes, ask the kernel to start writing what is behind us to disk (and
        # then drop it from the page cache: a volume is not read again). The disk then works while we hash, and
        # the fsync before the volume is catalogued has little left to wait for.
        self._fd = out.fileno() if flush_behind and hasattr(os, "posix_fadvise") else None
        self.flushed = 0
        self._vector_fd = _raw_descriptor(out)

    def put(self, data, release: Callable[[], None] | None = None) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="backup-volume-writer", daemon=True)
            self._thread.start()
        self._raise()
        self._queue.put((data, release))

    def mark(self) -> None:
        self.put(self._MARK)

    def drain(self) -> None:
        if self._thread is not None:
            self._queue.join()
        self._raise()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                self._queue.task_done()
                return
            data, release = item
            try:
                if data is self._MARK:
                    self.marked = self.sha256.copy()
                elif self._error is None and isinstance(data, tuple):
                    for part in data:
                        self.sha256.update(part)
                    self._write_parts(data)
                    if self._fd is not None:
                        self._flush_behind()
                elif self._error is None:
                    self.sha256.update(data)
                    write_all(self._out, data)
                    if self._fd is not None:
                        self._flush_behind()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread at its next call
                self._error = exc
            finally:
                if release is not None:
                    release()
                self._queue.task_done()

    def _write_parts(self, parts: tuple) -> None:
        """Write the parts one after the other: in one writev where the file allows it (no copy to join them)."""
        if self._vector_fd is None:
            for part in parts:
                write_all(self._out, part)
            return
        written = os.writev(self._vector_fd, parts)
        if written < sum(len(part) for part in parts):
            write_all(self._out, memoryview(b"".join(parts))[written:])

    def _flush_behind(self) -> None:
        position = os.lseek(self._fd, 0, os.SEEK_CUR)
        if position - self.flushed >= self.FLUSH_STEP:
            os.posix_fadvise(self._fd, self.flushed, position - self.flushed, os.POSIX_FADV_DONTNEED)
            self.flushed = position


def _raw_descriptor(out) -> int | None:
    """The file descriptor behind `out` when writing to it directly is the same as writing through it (an
    unbuffered file, possibly in a tempfile wrapper), else None."""
    raw = out if isinstance(out, io.FileIO) else getattr(out, "file", None)
    return raw.fileno() if isinstance(raw, io.FileIO) and hasattr(os, "writev") else None


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_all(out, data) -> None:
    """Write all of `data` to a raw (unbuffered) file, which may write less than asked at a time."""
    view = memoryview(data)
    while view:
        written = out.write(view)
        view = view[written:]


class VolumeWriter:
    """Appends members to a tar volume in `out` (a seekable binary file positioned at 0).

    Everything written goes through a background thread (`_BackgroundWriter`), contents in pieces of WRITE_PIECE
    bytes read into at most BUFFERS reused buffers. Call `close()` (or `stop()` to give up) so the thread ends.
    """

    BUFFERS = _BackgroundWriter.QUEUE_DEPTH + 2
    PENDING = 8  # small members read ahead of being written (at most PENDING x WRITE_PIECE bytes)

    def __init__(self, out, *, flush_behind: bool = False):
        self._out = out
        self._background = _BackgroundWriter(out, flush_behind=flush_behind)
        self._buffers: queue.SimpleQueue = queue.SimpleQueue()
        self._buffer_count = 0
        self.offset = 0
        self.members = 0
        self._mark = None  # the offset where the member being written began
        # Small members submitted with `submit_stream`: read, being hashed in another thread, not written yet.
        self._pending: collections.deque = collections.deque()
        self._pending_bytes = 0
        self._hasher = None

    def _write(self, data: bytes) -> None:
        self._background.put(data)
        self.offset += len(data)

    def _buffer(self) -> bytearray:
        if self._buffers.empty() and self._buffer_count < self.BUFFERS:
            self._buffer_count += 1
            return bytearray(WRITE_PIECE)
        return self._buffers.get()

    # --- sizes ----------------------------------------------------------------------------------------
    @staticmethod
    def member_bytes(name: str, size: int) -> int:
        if size < 8**11 and len(name) < 100 and name.isascii():
            return BLOCK + padded(size)  # a plain ustar header: no need to build it to know its size
        return len(tar_header(name, size, 0)) + padded(size)

    def size_after(self, extra: int) -> int:
        """The volume's final size if `extra` more member bytes were written and it were closed then."""
        return -(-(self.offset + self._pending_bytes + extra + 2 * BLOCK) // RECORD) * RECORD

    # --- members --------------------------------------------------------------------------------------
    def add_stream(self, name: str, stream, size: int, mtime: float, *, expected_sha256: str | None = None,
                   progress: Callable[[int], None] | None = None) -> WrittenMember:
        """Copy exactly `size` bytes of `stream` into a new member; SourceMismatch (and the member taken back)
        when the stream is shorter or its sha256 is not `expected_sha256`, SourceError when reading it fails.
        Errors writing the volume (OSError) propagate as they are: the volume cannot be finished then."""
        self.flush_pending()
        if size <= WRITE_PIECE:
            data = self._read_small(stream, size)
            if progress is not None:
                progress(size)
            return self._write_small(name, data, size, mtime, hashlib.sha256(data).hexdigest(), expected_sha256)
        self._mark = self.offset
        self._background.mark()
        header_offset = self.offset
        self._write(tar_header(name, size, mtime))
        data_offset = self.offset
        digest = hashlib.sha256()
        remaining = size
        readinto = getattr(stream, "readinto", None)
        while remaining > 0:
            want = min(WRITE_PIECE, remaining)
            try:
                if readinto is not None:
                    buffer = self._buffer()
                    try:
                        count = readinto(memoryview(buffer)[:want]) or 0
                    except BaseException:
                        self._buffers.put(buffer)
                        raise
                    piece = memoryview(buffer)[:count]
                else:
                    piece = stream.read(want)
                    count = len(piece)
            except Exception as exc:
                self.rollback()
                raise SourceError(str(exc) or type(exc).__name__) from exc
            if not count:
                if readinto is not None:
                    self._buffers.put(buffer)
                self.rollback()
                raise SourceMismatch(f"ended after {size - remaining} of {size} bytes")
            # The background thread hashes (for the volume) and writes the piece while this thread hashes it for
            # the member; the buffer goes back to the pool when both are done with it.
            self._background.put(piece, (lambda b=buffer: self._buffers.put(b)) if readinto is not None else None)
            self.offset += count
            digest.update(piece)
            remaining -= count
            if progress is not None:
                progress(count)
        sha256 = digest.hexdigest()
        if expected_sha256 is not None and sha256 != expected_sha256:
            self.rollback()
            raise SourceMismatch(f"has sha256 {sha256}, not {expected_sha256}")
        self._pad(size)
        self._mark = None
        self.members += 1
        return WrittenMember(name, header_offset, data_offset, size, sha256)

    @staticmethod
    def _read_small(stream, size: int) -> bytes:
        pieces, count = [], 0
        try:
            while count < size:
                piece = stream.read(size - count)
                if not piece:
                    break
                pieces.append(piece)
                count += len(piece)
        except Exception as exc:
            raise SourceError(str(exc) or type(exc).__name__) from exc
        if count < size:
            raise SourceMismatch(f"ended after {count} of {size} bytes")
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _write_small(self, name: str, data: bytes, size: int, mtime: float, sha256: str,
                     expected_sha256: str | None) -> WrittenMember:
        """A member of one piece, checked whole before anything is written (so there is nothing to take back):
        header, contents and padding go to the background thread as one write."""
        if expected_sha256 is not None and sha256 != expected_sha256:
            raise SourceMismatch(f"has sha256 {sha256}, not {expected_sha256}")
        header = tar_header(name, size, mtime)
        header_offset = self.offset
        padding = bytes(padded(size) - size)
        self._background.put((header, data, padding))  # joined, they would be copied once more
        self.offset += len(header) + size + len(padding)
        self.members += 1
        return WrittenMember(name, header_offset, header_offset + len(header), size, sha256)

    def submit_stream(self, name: str, stream, size: int, mtime: float, *, expected_sha256: str | None,
                      on_done: Callable[[WrittenMember | None, Exception | None], None],
                      progress: Callable[[int], None] | None = None) -> None:
        """Like `add_stream`, but a small member (one piece) is only read here: a third thread hashes it while
        this one reads the next, and it is checked and written later, in order (at the latest by
        `flush_pending`, `add_stream` or `close`). `on_done(member, None)` or `on_done(None, error)` reports
        each, SourceMismatch and SourceError included; an error writing the volume is raised instead."""
        if size > WRITE_PIECE:
            try:
                written = self.add_stream(name, stream, size, mtime, expected_sha256=expected_sha256,
                                          progress=progress)
            except (SourceMismatch, SourceError) as exc:
                on_done(None, exc)
                return
            on_done(written, None)
            return
        try:
            data = self._read_small(stream, size)
        except (SourceMismatch, SourceError) as exc:
            on_done(None, exc)
            return
        if progress is not None:
            progress(size)
        if self._hasher is None:
            self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="backup-member-hash")
        future = self._hasher.submit(_sha256_hex, data)
        self._pending.append((future, name, data, size, mtime, expected_sha256, on_done))
        self._pending_bytes += self.member_bytes(name, size)
        if len(self._pending) > self.PENDING:
            self._complete_oldest()

    def flush_pending(self) -> None:
        while self._pending:
            self._complete_oldest()

    def _complete_oldest(self) -> None:
        future, name, data, size, mtime, expected_sha256, on_done = self._pending.popleft()
        self._pending_bytes -= self.member_bytes(name, size)
        try:
            written = self._write_small(name, data, size, mtime, future.result(), expected_sha256)
        except SourceMismatch as exc:
            on_done(None, exc)
            return
        on_done(written, None)

    def add_bytes(self, name: str, data: bytes, mtime: float) -> WrittenMember:
        return self.add_stream(name, io.BytesIO(data), len(data), mtime)

    def rollback(self) -> None:
        """Take back the member being written, if any: truncate the file and the hash to where it began."""
        if self._mark is None:
            return
        try:
            self._background.drain()
        except Exception:  # noqa: BLE001 - the write that failed is being taken back anyway
            pass
        offset, self._mark = self._mark, None
        self._out.seek(offset)
        self._out.truncate(offset)
        self.offset = offset
        self._background.sha256 = self._background.marked
        self._background.flushed = min(self._background.flushed, offset)

    def _pad(self, size: int) -> None:
        if size % BLOCK:
            self._write(bytes(BLOCK - size % BLOCK))

    def close(self) -> tuple[int, str]:
        """Write the end-of-archive blocks and the record padding; return the volume's size and sha256."""
        self.flush_pending()
        self._stop_hasher()
        end = self.size_after(0)
        self._write(bytes(end - self.offset))
        self._background.drain()
        self._background.stop()
        self._out.flush()
        return self.offset, self._background.sha256.hexdigest()

    def stop(self) -> None:
        """Give up the volume: end the background threads without writing anything more."""
        self._pending.clear()
        self._pending_bytes = 0
        self._stop_hasher()
        self._background.stop()

    def _stop_hasher(self) -> None:
        if self._hasher is not None:
            self._hasher.shutdown(wait=True)
            self._hasher = None
