"""What a volume looks like: a POSIX tar file of 512-byte blocks, padded to whole 10 KiB records, with a README
and a manifest among its members; blob members are named by their sha256 (`blob_member`).

`tar_header` makes the header of a member (POSIX pax format: ustar, with a pax header only where ustar cannot
hold a name or a size), so any `tar` reads the volumes volume_writer.py writes.
"""

import tarfile

BLOCK = tarfile.BLOCKSIZE  # 512
RECORD = tarfile.RECORDSIZE  # 10240: tar pads the archive to a whole record, as GNU and BSD tar do
README_MEMBER = "README.txt"
MANIFEST_MEMBER = "manifest.jsonl"
README = """\
This is one volume of an nbarchive backup (a POSIX tar file; extract it with any tar).

blobs/<xx>/<sha256>   the contents of a deposited file, named by its SHA-256; each file is in exactly one volume
bags/<record>-v<n>-<digest>/
                      a BagIt bag (RFC 8493) with the metadata of one published version: data/nbarchive.json
                      (record, owners, version, creators, related identifiers, data references, files as
                      path -> sha256, DOI states), data/datacite.json and data/datacite.xml (DataCite 4.5)
manifest.jsonl        the first line describes the volume; then one JSON object per line: a blob member with
                      every (record, version, path) that uses it, a bag, or a file of a bag whose bytes are in an
                      earlier volume

The backup's catalog.json lists every volume with its size and SHA-256; restore with
`python manage.py restore --from <this backup's directory or s3://bucket/prefix>`.
"""


def blob_member(sha256: str) -> str:
    return f"blobs/{sha256[:2]}/{sha256}"


def padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


# The parts of a regular member's ustar header that never change (mode 0444, uid and gid 0, owner "nbarchive"),
# laid out as tarfile lays them out: see `_plain_header`.
_OCTAL_LIMIT = 8**11
_AFTER_MODE = b"0000444\0" + b"0000000\0" * 2
_AFTER_TIMES = (b" " * 8 + tarfile.REGTYPE + bytes(100) + tarfile.POSIX_MAGIC + b"nbarchive".ljust(32, b"\0") * 2
                + bytes(8 + 8 + 155 + 12))


def tar_header(name: str, size: int, mtime: float, *, directory: bool = False) -> bytes:
    mtime = int(mtime)
    if not directory and len(name) < 100 and name.isascii() and 0 <= size < _OCTAL_LIMIT and (
            0 <= mtime < _OCTAL_LIMIT):
        return _plain_header(name, size, mtime)
    info = tarfile.TarInfo(name)
    info.size = 0 if directory else size
    info.mtime = mtime
    info.mode = 0o555 if directory else 0o444
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.uname = info.gname = "nbarchive"
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


def _plain_header(name: str, size: int, mtime: int) -> bytes:
    """The header tarfile's PAX format writes for a regular member that ustar holds as it is (no pax header),
    byte for byte, without building a TarInfo: that took about a quarter of the per-file overhead of a backup of
    small files (tests/repository/backup/test_volumes.py compares the two)."""
    header = bytearray(name.encode("ascii").ljust(100, b"\0") + _AFTER_MODE + b"%011o\0%011o\0" % (size, mtime)
                       + _AFTER_TIMES)
    header[148:155] = b"%06o\0" % sum(header)  # the checksum field counts as eight spaces, as tar's does
    return bytes(header)
