"""Volume manifests: JSON Lines, written while the volume is, kept as its last member and as a separate object.

The first line describes the volume (`format`, `volume`, `sequence`, `created`). Then one object per line:

- `{"type": "blob", "member", "sha256", "md5", "size", "storage_key", "header_offset", "offset", "record",
  "version", "path"}` for a blob member of this volume, once per (record, version, path) that uses the blob
  (a blob kept by several versions is listed for each; record/version/path are null if none uses it);
- `{"type": "bag", "member", "record", "version", "digest"}` for a bag in this volume;
- `{"type": "file", ..., "volume"}` for a file of a bag in this volume whose bytes are in an earlier volume.

Lines go to a temporary file as members are added, so a volume of a million files costs no memory.
"""

import hashlib
import json
import tempfile
from dataclasses import dataclass, field

FORMAT = "nbarchive-backup-manifest/1"


def _line(entry: dict) -> bytes:
    return (json.dumps(entry, ensure_ascii=False, separators=(",", ":"), sort_keys=True) + "\n").encode()


class ManifestWriter:
    def __init__(self, *, volume: str, sequence: int, created: str):
        self._file = tempfile.TemporaryFile(prefix="nbarchive-manifest-")
        self.size = 0
        self.write({"format": FORMAT, "volume": volume, "sequence": sequence, "created": created})

    @staticmethod
    def encoded_size(entries: list[dict]) -> int:
        return sum(len(_line(entry)) for entry in entries)

    def write(self, entry: dict) -> None:
        self.write_line(_line(entry))

    def write_line(self, data: bytes) -> None:
        self._file.write(data)
        self.size += len(data)

    def getvalue(self) -> bytes:
        """The whole manifest (small next to the volume: about 300 bytes a file)."""
        self._file.seek(0)
        return self._file.read()

    def close(self) -> None:
        self._file.close()


class BlobLines:
    """A blob member's manifest lines, encoded once before its offsets are known (`room` says how long they can
    get, for the volume's size limit) and completed with them afterwards (`lines`)."""

    _ROOM_PER_LINE = 2 * 20  # two offsets of up to 20 digits in place of the placeholders

    def __init__(self, *, member: str, sha256: str, md5: str, size: int, storage_key: str,
                 uses: list[tuple[str, int, str]]):
        entries = blob_entries(member=member, sha256=sha256, md5=md5, size=size, storage_key=storage_key,
                               header_offset=-1, offset=-2, uses=uses)
        self._lines = [_line(entry) for entry in entries]
        self.room = sum(len(line) for line in self._lines) + self._ROOM_PER_LINE * len(self._lines)

    def lines(self, *, header_offset: int, offset: int) -> list[bytes]:
        return [line.replace(b'"header_offset":-1', b'"header_offset":%d' % header_offset)
                .replace(b'"offset":-2', b'"offset":%d' % offset) for line in self._lines]


def blob_entries(*, member: str, sha256: str, md5: str, size: int, storage_key: str, header_offset: int,
                 offset: int, uses: list[tuple[str, int, str]]) -> list[dict]:
    base = {"type": "blob", "member": member, "sha256": sha256, "md5": md5, "size": size,
            "storage_key": storage_key, "header_offset": header_offset, "offset": offset}
    if not uses:
        return [base | {"record": None, "version": None, "path": None}]
    return [base | {"record": record, "version": number, "path": path} for record, number, path in uses]


@dataclass
class Manifest:
    header: dict
    blobs: dict[str, dict] = field(default_factory=dict)  # member -> its first blob entry
    uses: list[dict] = field(default_factory=list)  # every blob and file entry
    bags: list[dict] = field(default_factory=list)


def manifest_parse(data: bytes) -> Manifest:
    """Raises ValueError for anything that is not a manifest of this format."""
    lines = [line for line in data.decode("utf-8").splitlines() if line.strip()]
    if not lines:
        raise ValueError("the manifest is empty")
    header = json.loads(lines[0])
    if header.get("format") != FORMAT:
        raise ValueError(f"not a manifest of format {FORMAT}")
    manifest = Manifest(header=header)
    for line in lines[1:]:
        entry = json.loads(line)
        kind = entry.get("type")
        if kind == "blob":
            manifest.blobs.setdefault(entry["member"], entry)
            manifest.uses.append(entry)
        elif kind == "file":
            manifest.uses.append(entry)
        elif kind == "bag":
            manifest.bags.append(entry)
    return manifest


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
