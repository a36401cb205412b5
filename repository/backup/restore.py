"""`backup_restore`: rebuild primary storage, and the records' metadata when the database is empty, from nothing
but a backup target. Two jobs, in this order:

1. Verify the backup (this module): read catalog.json, then every volume front to back (S3 volumes in an archive
   class are first restored on request: BackupObjectCold until S3 has done so) and check the volume's size and
   sha256 against the catalog, the separate manifest against its catalogued sha256 and against the copy inside
   the volume, every blob member's sha256 (its name) and size, and every bag (bagit validates each payload
   file). Restoring, a blob whose primary object is missing or does not match is written back under its storage
   key, from bytes verified first (primary.py), and the latest bag of every version is kept aside.
2. Rebuild the database from it (rebuild.py): when the database has no Record, the records from those bags;
   then the backup catalog rows, so the next backup appends to the same target.

Problems do not stop the restore: each is listed in the summary (and the command exits non-zero). `verify_only`
does the first job only, and changes nothing.
"""

import hashlib
import json
import logging
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from django.conf import settings

from repository.backup import bags as bagging
from repository.backup.catalog import catalog_read
from repository.backup.errors import BackupObjectCold, BackupTargetError
from repository.backup.manifest import Manifest, manifest_parse, sha256_hex
from repository.backup.primary import Mismatch, primary_check, primary_write, spool_verified, stream_pieces
from repository.backup.rebuild import DatabaseRebuild
from repository.backup.targets import target_from_location
from repository.backup.volume_format import MANIFEST_MEMBER, README_MEMBER
from repository.backup.volume_reader import read_volume
from repository.models import Blob, Record
from repository.storage import STORAGE_ERRORS

logger = logging.getLogger(__name__)

SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class RestoreSummary:
    target: str
    verify_only: bool
    volumes: int = 0
    members: int = 0
    bytes: int = 0
    blobs_written: int = 0
    blobs_intact: int = 0
    blobs_verified: int = 0
    bags: int = 0
    users: int = 0
    records: int = 0
    versions: int = 0
    metadata: str = ""
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        head = (f"{self.volumes} volume(s), {self.members} member(s), {self.bytes:,} bytes read from {self.target} "
                f"in {self.seconds:.1f} s")
        if self.verify_only:
            text = f"Verified {head}: {self.blobs_verified} file(s) and {self.bags} bag(s) checked"
        else:
            text = (f"Restored from {head}: {self.blobs_written} file(s) written to primary storage, "
                    f"{self.blobs_intact} already intact, {self.bags} bag(s) read; {self.metadata}")
        if self.problems:
            text += f"; {len(self.problems)} problem(s)"
        return text


def backup_restore(*, location: str, verify_only: bool = False,
                   progress: Callable[[int, int], None] | None = None) -> RestoreSummary:
    """Restore (or verify) from the target at `location` (a directory or s3://bucket[/prefix]).

    `progress(bytes, total)` is called as volumes are read. Raises BackupTargetError (no such target, no
    catalog), BackupObjectCold (volumes still being restored from an archive storage class) and
    BackupIntegrityError (an unreadable catalog); every other problem is listed in the summary.
    """
    target = target_from_location(location)
    target.check()
    catalog = catalog_read(target)
    volumes = catalog["volumes"]
    pending = target.make_readable([v["object"] for v in volumes])
    if pending:
        raise BackupObjectCold(
            f"{len(pending)} of {len(volumes)} volume(s) in {target.location} are in cold storage; S3 was asked to "
            f"restore them for {settings.BACKUP_S3_RESTORE_DAYS} days ({settings.BACKUP_S3_RESTORE_TIER} tier). "
            "Run this again once they are readable (hours for DEEP_ARCHIVE).")
    total = sum(v["size"] for v in volumes)
    with tempfile.TemporaryDirectory(prefix="nbarchive-restore-") as work:
        restore = _Restore(target, verify_only, Path(work), total, progress)
        return restore.run(volumes)


class _Restore:
    def __init__(self, target, verify_only: bool, work: Path, total: int, progress):
        self.target = target
        self.verify_only = verify_only
        self.work = work
        self.total = total
        self.progress = progress
        self.summary = RestoreSummary(target=target.location, verify_only=verify_only)
        self.database_empty = not Record.objects.exists()
        self.available: set[str] = set()  # sha256 of blobs verified in primary storage
        self.bad_members: set[tuple[str, str]] = set()  # (volume, member) found damaged
        self.unreadable_manifests: set[str] = set()
        self.exports = work / "exports"
        self.started = time.monotonic()

    def problem(self, text: str) -> None:
        logger.error("Restore: %s", text)
        self.summary.problems.append(text)

    def _advance(self, count: int) -> None:
        self.summary.bytes += count
        if self.progress is not None:
            self.progress(count, self.total)

    def run(self, volumes: list[dict]) -> RestoreSummary:
        for volume in volumes:
            self.volume(volume)
            self.summary.volumes += 1
        if self.verify_only:
            self.summary.metadata = "nothing changed (verify only)"
            self.summary.seconds = time.monotonic() - self.started
            return self.summary
        rebuild = DatabaseRebuild(self.target, self.summary, self.problem)
        if not self.database_empty:
            self.summary.metadata = "the database already has records, so its metadata was kept"
        else:
            rebuild.records_rebuild(self.exports, self.available)
        rebuild.catalog_rows_rebuild(volumes, self._intact_manifest, self.bad_members)
        self.summary.seconds = time.monotonic() - self.started
        return self.summary

    # --- volumes --------------------------------------------------------------------------------------
    def _intact_manifest(self, volume: dict) -> Manifest | None:
        """The volume's separate manifest if it matches the catalog and was readable when the volume was read;
        None otherwise (the problem was reported then)."""
        if volume["name"] in self.unreadable_manifests:
            return None
        try:
            data = self.target.read_bytes(volume["manifest"])
            return manifest_parse(data) if sha256_hex(data) == volume["manifest_sha256"] else None
        except (BackupTargetError, ValueError):
            return None

    def _manifest(self, volume: dict) -> Manifest | None:
        """The volume's separate manifest, checked against the catalog; None (and a problem) when it is not."""
        try:
            data = self.target.read_bytes(volume["manifest"])
        except BackupTargetError as exc:
            self.problem(f"{volume['name']}: its manifest cannot be read ({exc.detail})")
            return None
        if sha256_hex(data) != volume["manifest_sha256"]:
            self.problem(f"{volume['name']}: its manifest {volume['manifest']} does not match the catalog's sha256")
            return None
        try:
            manifest = manifest_parse(data)
        except ValueError as exc:
            self.problem(f"{volume['name']}: its manifest is not readable ({exc})")
            return None
        return manifest

    def volume(self, volume: dict) -> None:
        name = volume["name"]
        manifest = self._manifest(volume)
        if manifest is None:
            self.unreadable_manifests.add(name)
        seen: set[str] = set()
        bag_folders: dict[str, Path] = {}
        try:
            stream = self.target.open_read(volume["object"])
        except BackupTargetError as exc:
            self.problem(f"{name}: {exc.detail}")
            return
        complete = False
        with closing(stream):
            hashing, members = read_volume(stream, self._advance)
            try:
                for member in members:
                    self.summary.members += 1
                    path = PurePosixPath(member.name)
                    if path.is_absolute() or ".." in path.parts:
                        self.problem(f"{name}: refusing the member name {member.name!r}")
                    elif member.name.startswith("blobs/") and member.is_file:
                        seen.add(member.name)
                        self._blob(name, member, manifest)
                    elif member.name.startswith("bags/") and member.is_file:
                        folder = "/".join(path.parts[:2])
                        bag_folders.setdefault(folder, self.work / "bags" / name / path.parts[1])
                        destination = self.work / "bags" / name / Path(*path.parts[1:])
                        destination.parent.mkdir(parents=True, exist_ok=True)
                        with open(destination, "wb") as out:
                            shutil.copyfileobj(member.reader, out, 1024 * 1024)
                    elif member.name == MANIFEST_MEMBER:
                        inner = member.reader.read()
                        if sha256_hex(inner) != volume["manifest_sha256"]:
                            self.problem(f"{name}: the manifest inside the volume differs from the catalogued one")
                    elif member.name != README_MEMBER and member.is_file:
                        self.problem(f"{name}: unexpected member {member.name}")
                complete = True
            except (tarfile.TarError, EOFError, OSError) as exc:
                self.problem(f"{name}: the volume is damaged or truncated ({exc})")
            except BackupTargetError as exc:
                self.problem(f"{name}: reading it failed ({exc.detail})")
        if complete and (hashing.size != volume["size"] or hashing.sha256.hexdigest() != volume["sha256"]):
            self.problem(f"{name}: {hashing.size} bytes with sha256 {hashing.sha256.hexdigest()}, but the catalog "
                         f"says {volume['size']} bytes with sha256 {volume['sha256']}")
        if manifest is not None:
            for member_name in sorted(set(manifest.blobs) - seen):
                self.problem(f"{name}: {member_name} is listed in its manifest but missing from the volume")
                self.bad_members.add((name, member_name))
        for folder, directory in bag_folders.items():
            self._bag(name, folder, directory)
        shutil.rmtree(self.work / "bags" / name, ignore_errors=True)

    def _blob(self, volume_name: str, member, manifest: Manifest | None) -> None:
        sha256 = member.name.rsplit("/", 1)[-1]
        entry = manifest.blobs.get(member.name) if manifest else None
        if not SHA256.match(sha256):
            self.problem(f"{volume_name}: {member.name} is not named by a sha256")
            return
        if manifest is not None and entry is None:
            self.problem(f"{volume_name}: {member.name} is not in the volume's manifest")
        elif entry is not None and (entry["sha256"] != sha256 or entry["size"] != member.size):
            self.problem(f"{volume_name}: the manifest describes {member.name} differently")
        key = None
        if not self.verify_only:
            key = Blob.objects.filter(sha256=sha256).values_list("storage_key", flat=True).first()
            key = key or (entry["storage_key"] if entry else None)
            if key is None:
                self.problem(f"{volume_name}: no storage key known for {member.name} (no manifest entry)")
        state = primary_check(key, sha256, member.size) if key else None
        if state is None or state.ok:
            # Nothing to write: hashing the member is enough (and reads it through for the volume's hash).
            digest, length = hashlib.sha256(), 0
            for piece in stream_pieces(member.reader, member.size):
                digest.update(piece)
                length += len(piece)
            if length != member.size or digest.hexdigest() != sha256:
                self.bad_members.add((volume_name, member.name))
                self.problem(f"{volume_name}: {member.name} is damaged: {length} bytes with sha256 "
                             f"{digest.hexdigest()}")
            else:
                self.summary.blobs_verified += 1
            if state is not None:
                self.summary.blobs_intact += 1
                self.available.add(sha256)
            return
        try:
            spool = spool_verified(stream_pieces(member.reader, member.size), sha256, member.size)
        except Mismatch as exc:
            self.bad_members.add((volume_name, member.name))
            self.problem(f"{volume_name}: {member.name} is damaged ({exc}); primary storage still lacks it as {key} "
                         f"({state.detail})")
            return
        self.summary.blobs_verified += 1
        with spool:
            try:
                primary_write(key, spool)
            except STORAGE_ERRORS as exc:
                self.problem(f"{volume_name}: writing {member.name} to primary storage as {key} failed: {exc}")
                return
        self.summary.blobs_written += 1
        self.available.add(sha256)

    def _bag(self, volume_name: str, folder: str, directory: Path) -> None:
        try:
            export = bagging.bag_read(directory)
        except Exception as exc:  # noqa: BLE001 - bagit raises its own errors, ValueError and OSError alike
            self.bad_members.add((volume_name, folder))
            self.problem(f"{volume_name}: the bag {folder} is not valid: {exc}")
            return
        self.summary.bags += 1
        record, number = export["record"]["public_id"], export["version"]["number"]
        destination = self.exports / record / f"{number}.json"
        destination.parent.mkdir(parents=True, exist_ok=True)
        # Volumes are read in order, so a later bag of the same version replaces an earlier one.
        destination.write_text(json.dumps(export))
