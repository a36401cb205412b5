"""The tar volume writer: plain POSIX tar that any tar reads, with offsets, hashes and rollback that hold."""

import hashlib
import io
import os
import subprocess
import tarfile

import pytest

from repository.backup.volume_format import tar_header
from repository.backup.volume_reader import read_volume
from repository.backup.volume_writer import SourceError, SourceMismatch, VolumeWriter


class FailingStream(io.RawIOBase):
    def __init__(self, data: bytes, fail_after: int):
        self._data = io.BytesIO(data)
        self._fail_after = fail_after

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._data.tell() >= self._fail_after:
            raise ConnectionResetError("the storage went away")
        return self._data.readinto(buffer)


@pytest.mark.parametrize("flush_behind", [False, True])
def test_a_volume_is_a_tar_file_whose_offsets_hashes_and_size_hold(tmp_path, flush_behind):
    contents = {"blobs/aa/small": b"tiny", "blobs/bb/big": os.urandom(3 * 1024 * 1024 + 17), "empty": b"",
                "bags/" + "long-name-" * 20 + "/data/nbarchive.json": "é".encode() * 1000}
    path = tmp_path / "volume.tar"
    with open(path, "w+b", buffering=0) as out:
        writer = VolumeWriter(out, flush_behind=flush_behind)
        written = {name: writer.add_bytes(name, data, 0) for name, data in contents.items()}
        # A member whose source is corrupt, one whose source is short and one whose source fails are taken back.
        with pytest.raises(SourceMismatch, match="not"):
            writer.add_stream("blobs/cc/bad", io.BytesIO(b"x" * 300_000), 300_000, 0, expected_sha256="0" * 64)
        with pytest.raises(SourceMismatch, match="ended after 10 of 20"):
            writer.add_stream("blobs/dd/short", io.BytesIO(b"y" * 10), 20, 0)
        with pytest.raises(SourceError, match="went away"):
            writer.add_stream("blobs/ee/fails", FailingStream(os.urandom(900_000), 300_000), 900_000, 0)
        writer.add_bytes("last", b"after the rollbacks", 0)
        size, sha256 = writer.close()

    data = path.read_bytes()
    assert len(data) == size and size % 10240 == 0
    assert hashlib.sha256(data).hexdigest() == sha256
    for name, member in written.items():
        assert data[member.data_offset:member.data_offset + member.size] == contents[name]
        assert member.sha256 == hashlib.sha256(contents[name]).hexdigest()
    with tarfile.open(path) as archive:
        assert archive.getnames() == [*contents, "last"]
        assert archive.extractfile("blobs/bb/big").read() == contents["blobs/bb/big"]
    listing = subprocess.run(["tar", "-tf", str(path)], capture_output=True, text=True, check=True).stdout.split()
    assert listing == [*contents, "last"]

    with open(path, "rb") as stream:
        hashing, members = read_volume(stream)
        names = [(m.name, m.reader.read() if m.is_file else None) for m in members]
    assert dict(names) == {**contents, "last": b"after the rollbacks"}
    assert (hashing.size, hashing.sha256.hexdigest()) == (size, sha256)


def _tarfile_header(name: str, size: int, mtime: float) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.type = size, int(mtime), 0o444, tarfile.REGTYPE
    info.uname = info.gname = "nbarchive"
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


@pytest.mark.parametrize(("name", "size", "mtime"), [
    ("blobs/ab/" + "a" * 64, 270_000, 1_765_000_000.7), ("a", 0, 0), ("x" * 99, 8**11 - 1, 8**11 - 1),
    ("x" * 100, 5, 1), ("x" * 150, 5, 1), ("ü.txt", 3, 1), ("big", 8**11, 1), ("old", 1, -5), ("future", 1, 8**11),
])
def test_member_headers_are_the_ones_tarfile_writes(tmp_path, name, size, mtime):
    # Plain headers are built without tarfile (it cost a quarter of the per-file overhead of small files):
    # byte for byte what tarfile writes, and anything ustar cannot hold still gets its pax header.
    assert tar_header(name, size, mtime) == _tarfile_header(name, size, mtime)


def test_tar_lists_members_with_their_owner_mode_and_time(tmp_path):
    path = tmp_path / "volume.tar"
    with open(path, "w+b", buffering=0) as out:
        writer = VolumeWriter(out)
        writer.add_bytes("blobs/ab/" + "a" * 64, b"z" * 1000, 1_765_000_000)
        writer.close()
    listing = subprocess.run(["tar", "-tvf", str(path), "--numeric-owner", "--full-time"], capture_output=True,
                             text=True, check=True, env={**os.environ, "TZ": "UTC"}).stdout.split()
    assert listing == ["-r--r--r--", "0/0", "1000", "2025-12-06", "05:46:40", "blobs/ab/" + "a" * 64]
    with tarfile.open(path) as archive:
        (member,) = archive.getmembers()
        assert (member.uname, member.gname, member.mode, member.mtime) == ("nbarchive", "nbarchive", 0o444,
                                                                           1_765_000_000)


def test_the_size_of_a_member_is_known_before_it_is_written(tmp_path):
    with open(tmp_path / "v.tar", "w+b", buffering=0) as out:
        writer = VolumeWriter(out)
        for name, size in [("blobs/ab/" + "a" * 64, 1000), ("x" * 150, 10), ("ü.txt", 3)]:
            before = writer.offset
            writer.add_bytes(name, b"z" * size, 0)
            assert writer.offset - before == VolumeWriter.member_bytes(name, size)
        predicted = writer.size_after(0)
        assert writer.close()[0] == predicted


def test_submitted_small_members_are_checked_before_they_are_written_in_order(tmp_path):
    path = tmp_path / "volume.tar"
    results = []
    contents = [(f"blobs/{i:02d}", os.urandom(1000 + i)) for i in range(20)]
    with open(path, "w+b", buffering=0) as out:
        writer = VolumeWriter(out)
        for index, (name, data) in enumerate(contents):
            expected = "0" * 64 if index == 7 else hashlib.sha256(data).hexdigest()
            writer.submit_stream(name, io.BytesIO(data), len(data), 0, expected_sha256=expected,
                                 on_done=lambda written, error, n=name: results.append((n, written, error)))
        writer.submit_stream("blobs/short", io.BytesIO(b"abc"), 10, 0, expected_sha256=None,
                             on_done=lambda written, error: results.append(("blobs/short", written, error)))
        big = os.urandom(600_000)
        writer.submit_stream("blobs/big", io.BytesIO(big), len(big), 0, expected_sha256=hashlib.sha256(big).hexdigest(),
                             on_done=lambda written, error: results.append(("blobs/big", written, error)))
        size, sha256 = writer.close()

    # Reported in the order they were submitted (the short one at once, before the pending ones were written).
    assert [n for n, _, _ in results if n != "blobs/short"] == [n for n, _ in contents] + ["blobs/big"]
    failed = {n: type(e).__name__ for n, w, e in results if e is not None}
    assert failed == {"blobs/07": "SourceMismatch", "blobs/short": "SourceMismatch"}
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == sha256 and len(data) == size
    everything = dict(contents) | {"blobs/big": big}
    for name, written, error in results:
        if error is None:
            assert data[written.data_offset:written.data_offset + written.size] == everything[name]
    with tarfile.open(path) as archive:
        assert archive.getnames() == [n for n, _ in contents if n != "blobs/07"] + ["blobs/big"]


def test_a_volume_is_the_same_written_to_a_file_or_to_a_stream_without_a_descriptor(tmp_path):
    # Small members go out as header, contents and padding in one writev where the file has a descriptor, part
    # by part elsewhere: the volumes must not differ.
    members = [(f"blobs/{i:02d}/m", os.urandom(size)) for i, size in enumerate([0, 1, 511, 512, 513, 200_000])]

    def write(out) -> tuple[int, str]:
        writer = VolumeWriter(out)
        for name, data in members:
            writer.submit_stream(name, io.BytesIO(data), len(data), 0, expected_sha256=None,
                                 on_done=lambda member, error: None)
        return writer.close()

    with open(tmp_path / "v.tar", "w+b", buffering=0) as out:
        on_disk = write(out)
    in_memory = io.BytesIO()
    assert write(in_memory) == on_disk
    assert in_memory.getvalue() == (tmp_path / "v.tar").read_bytes()
    with tarfile.open(tmp_path / "v.tar") as archive:
        assert [(m.name, archive.extractfile(m).read()) for m in archive.getmembers()] == members
