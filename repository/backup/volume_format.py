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


def tar_header(name: str, size: int, mtime: float, *, directory: bool = False) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = 0 if directory else size
    info.mtime = int(mtime)
    info.mode = 0o555 if directory else 0o444
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.uname = info.gname = "nbarchive"
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")
