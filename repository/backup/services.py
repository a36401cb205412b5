"""`backup_run`: append what is new to the backup target, incrementally.

What goes to the backup tier: the blobs of accepted versions (publishing, published, withdrawn), each exactly
once (a BackupCopy row says where), and a BagIt bag of each accepted version's metadata, written again only when
that metadata changed (BackupBag.digest). Drafts are not backed up: until a moderator accepts them they are their
authors' working copies.

Versions are visited in primary-key order; for each, its blobs that have no copy yet are streamed from primary
storage into the current volume (the sha256 is checked on the way: a blob whose bytes no longer match is not
written, and reported), then its bag. So a bag's files are always in its volume or an earlier one. A volume is
closed when the next member would take it past BACKUP_VOLUME_MAX_BYTES (a single larger blob gets a volume of its
own); then it is committed to the target, its manifest written beside it, its rows (BackupVolume, BackupCopy,
BackupBag) committed in one transaction, and catalog.json rewritten. A run that fails leaves every earlier
volume complete and catalogued; the half-written one never appears.

One run at a time (a BackupRun row with status "running" is the lock). Errors: BackupRunning, BackupTargetError,
BackupIntegrityError; blobs that cannot be read are listed in the summary, and the run goes on with the others.
"""

import logging
import time
from array import array
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from secrets import token_hex

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Sum
from django.utils import timezone

from repository.backup import bags
from repository.backup import manifest as manifests
from repository.backup.catalog import catalog_check_consistent, catalog_write, manifest_object, volume_object
from repository.backup.errors import BackupRunning, BackupTargetError
from repository.backup.models import BackupBag, BackupCopy, BackupRun, BackupVolume
from repository.backup.targets import BackupTarget, LocalDirectoryTarget, target_from_settings
from repository.backup.volume_format import MANIFEST_MEMBER, README, README_MEMBER, blob_member
from repository.backup.volume_writer import SourceMismatch, VolumeWriter
from repository.models import Blob, Version, VersionFile
from repository.storage import STORAGE_ERRORS, open_blob_stream

logger = logging.getLogger(__name__)

# A run whose heartbeat is older than this died without saying so (killed worker); the next run takes over.
STALE_RUN = timedelta(hours=6)
VERSION_BATCH = 20  # versions (of up to MAX_FILES_PER_VERSION files each) held in memory at a time
COPY_CHUNK = 1000  # BackupCopy rows created per query


@dataclass
class BackupSummary:
    target: str
    volumes: list[str] = field(default_factory=list)
    blobs: int = 0
    bytes: int = 0
    bags: int = 0
    versions_unchanged: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def line(self) -> str:
        rate = self.bytes / self.seconds / 1e6 if self.seconds else 0.0
        text = (f"{self.blobs} file(s) ({self.bytes:,} bytes) and {self.bags} metadata bag(s) in "
                f"{len(self.volumes)} new volume(s) to {self.target} in {self.seconds:.1f} s ({rate:.0f} MB/s); "
                f"{self.versions_unchanged} version(s) already up to date")
        if self.failures:
            text += f"; {len(self.failures)} file(s) could not be backed up"
        return text


def backup_pending() -> tuple[int, int]:
    """How many blobs of accepted versions have no backup copy yet, and their total size."""
    accepted_use = VersionFile.objects.filter(blob=OuterRef("pk"), version__state__in=Version.ACCEPTED_STATES)
    pending = Blob.objects.filter(Exists(accepted_use), backup_copy__isnull=True)
    return pending.count(), pending.aggregate(total=Sum("size"))["total"] or 0


def backup_run(*, trigger: str = "command", progress: Callable[[int], None] | None = None,
               target: BackupTarget | None = None) -> BackupSummary:
    """Back up what is new (see the module docstring); `progress` is called with each piece's byte count."""
    target = target or target_from_settings()
    if isinstance(target, LocalDirectoryTarget):
        target.check_writable()
    target.check()
    run = _lock(target, trigger)
    try:
        catalog_check_consistent(target)
        summary = _Backup(target, run, progress).run()
    except BaseException as exc:
        BackupRun.objects.filter(pk=run.pk).update(status=BackupRun.Status.FAILED, finished_at=timezone.now(),
                                                   error=str(exc)[:2000] or type(exc).__name__)
        raise
    BackupRun.objects.filter(pk=run.pk).update(
        status=BackupRun.Status.SUCCEEDED if not summary.failures else BackupRun.Status.FAILED,
        finished_at=timezone.now(), error="\n".join(summary.failures)[:10000])
    return summary


def _lock(target: BackupTarget, trigger: str) -> BackupRun:
    for _ in range(2):
        try:
            with transaction.atomic():
                return BackupRun.objects.create(trigger=trigger, target=target.location)
        except IntegrityError:
            running = BackupRun.objects.filter(status=BackupRun.Status.RUNNING).first()
            if running is None:
                continue
            if running.heartbeat_at > timezone.now() - STALE_RUN:
                raise BackupRunning(f"A backup started at {running.started_at:%Y-%m-%d %H:%M} UTC is still "
                                    "running.") from None
            BackupRun.objects.filter(pk=running.pk, status=BackupRun.Status.RUNNING).update(
                status=BackupRun.Status.FAILED, finished_at=timezone.now(), error="abandoned (no heartbeat)")
    raise BackupRunning("Another backup is starting.")


class _OpenVolume:
    """The volume being written: its sink in the target, tar writer, manifest and the rows it will commit."""

    def __init__(self, target: BackupTarget, sequence: int):
        self.created = timezone.now()
        self.sequence = sequence
        self.name = f"nbarchive-{sequence:06d}-{token_hex(4)}"
        self.sink = target.volume_sink(volume_object(self.name))
        self.writer = VolumeWriter(self.sink.file, flush_behind=self.sink.flush_behind)
        self.manifest = manifests.ManifestWriter(volume=self.name, sequence=sequence,
                                                 created=self.created.isoformat())
        # (blob pk, header offset, data offset) of each blob member, flat and compact: a volume of small files
        # holds a great many. Memory grows with the number of files in one volume, not with their sizes.
        self.copies = array("q")
        self.copied: set[int] = set()
        self.copied_bytes = 0
        self.manifest_reserved = 0
        self.bags: list[tuple[int, str, str]] = []  # (version pk, member, digest)
        self.writer.add_bytes(README_MEMBER, README.encode(), time.time())

    @property
    def empty(self) -> bool:
        """Nothing but the README, nor anything on its way (a blob read but not checked yet counts)."""
        return not self.copied and not self.bags

    def fits(self, member_bytes: int, manifest_bytes: int, max_bytes: int) -> bool:
        manifest_size = self.manifest.size + self.manifest_reserved + manifest_bytes
        total = member_bytes + VolumeWriter.member_bytes(MANIFEST_MEMBER, manifest_size)
        return self.writer.size_after(total) <= max_bytes


class _Backup:
    def __init__(self, target: BackupTarget, run: BackupRun, progress):
        self.target = target
        self.run_row = run
        self.progress = progress
        self.max_bytes = settings.BACKUP_VOLUME_MAX_BYTES
        self.summary = BackupSummary(target=target.location)
        self.volume: _OpenVolume | None = None
        self.next_sequence = (BackupVolume.objects.order_by("-sequence").values_list("sequence", flat=True)
                              .first() or 0) + 1
        self.failed: set[int] = set()
        # blob pk -> (volume name, member, data offset) of the copies in committed volumes this batch may use
        self.locations: dict[int, tuple[str, str, int]] = {}
        self.batch_blobs: set[int] = set()
        self.uses: dict[int, list[tuple[str, int, str]]] = {}  # blob pk -> (record, version, path) using it
        self.started = time.monotonic()

    def run(self) -> BackupSummary:
        try:
            last_pk = 0
            while True:
                batch = list(bags.versions_for_export().filter(pk__gt=last_pk)[:VERSION_BATCH])
                if not batch:
                    break
                self._batch(batch)
                last_pk = batch[-1].pk
            if self.volume is not None and not self.volume.empty:
                self._commit_volume()
        except OSError as exc:
            # Reading primary storage is handled per blob; what is left is writing the volume (the target or the
            # spool directory full or gone).
            where = f"volume {self.volume.name} " if self.volume is not None else ""
            raise BackupTargetError(f"Writing {where}to {self.target.location} failed: {exc}") from exc
        finally:
            if self.volume is not None:
                self.volume.writer.stop()
                self.volume.sink.abort()
                self.volume.manifest.close()
                self.volume = None
        self.summary.seconds = time.monotonic() - self.started
        return self.summary

    # --- per version ----------------------------------------------------------------------------------
    def _batch(self, versions: list[Version]) -> None:
        blob_ids = {f.blob_id for v in versions for f in v.files.all()}
        self.batch_blobs = blob_ids
        self.locations = {c.blob_id: (c.volume.name, c.member, c.data_offset)
                          for c in BackupCopy.objects.filter(blob_id__in=blob_ids).select_related("volume")}
        latest_digest = {}
        for version_id, digest in (BackupBag.objects.filter(version__in=versions)
                                   .order_by("version_id", "-id").values_list("version_id", "digest")):
            latest_digest.setdefault(version_id, digest)
        needed = blob_ids - set(self.locations)
        self.uses = defaultdict(list)
        for blob_id, *use in (VersionFile.objects.filter(blob_id__in=needed, version__state__in=Version.ACCEPTED_STATES)
                              .order_by("version__record__public_id", "version__number", "path")
                              .values_list("blob_id", "version__record__public_id", "version__number", "path")):
            self.uses[blob_id].append(tuple(use))
        for version in versions:
            for version_file in version.files.all():
                blob = version_file.blob
                if blob.pk in self.locations or blob.pk in self.failed or (
                        self.volume and blob.pk in self.volume.copied):
                    continue
                self._add_blob(blob)
            if self.volume is not None:
                self.volume.writer.flush_pending()  # whether all of the version's files made it decides its bag
            export = bags.version_export(version)
            digest = bags.export_digest(export)
            if latest_digest.get(version.pk) == digest:
                self.summary.versions_unchanged += 1
            elif any(f.blob_id in self.failed for f in version.files.all()):
                logger.warning("Not writing the bag of %s: some of its files could not be backed up.", version)
            else:
                self._add_bag(version, export, digest)

    def _add_blob(self, blob: Blob) -> None:
        member = blob_member(blob.sha256)
        lines = manifests.BlobLines(member=member, sha256=blob.sha256, md5=blob.md5, size=blob.size,
                                    storage_key=blob.storage_key, uses=self.uses.get(blob.pk, []))
        volume = self._volume_for(VolumeWriter.member_bytes(member, blob.size), lines.room)
        try:
            stream = open_blob_stream(blob.storage_key)
        except FileNotFoundError:
            return self._fail(blob, "missing from primary storage")
        except STORAGE_ERRORS as exc:
            return self._fail(blob, f"cannot be read from primary storage ({exc})")
        volume.copied.add(blob.pk)
        volume.manifest_reserved += lines.room  # its lines are written once its bytes are checked

        def done(written, error) -> None:
            volume.manifest_reserved -= lines.room
            if error is not None:
                volume.copied.discard(blob.pk)
                if isinstance(error, SourceMismatch):
                    self._fail(blob, f"primary object {error}")
                else:
                    self._fail(blob, f"cannot be read from primary storage ({error})")
                return
            for line in lines.lines(header_offset=written.header_offset, offset=written.data_offset):
                volume.manifest.write_line(line)
            volume.copies.extend((blob.pk, written.header_offset, written.data_offset))
            volume.copied_bytes += blob.size

        with stream:
            volume.writer.submit_stream(member, stream, blob.size, blob.created.timestamp(),
                                        expected_sha256=blob.sha256, on_done=done, progress=self.progress)

    def _fail(self, blob: Blob, reason: str) -> None:
        message = f"sha256:{blob.sha256} ({blob.storage_key}) {reason}"
        logger.error("Backup: %s", message)
        self.failed.add(blob.pk)
        self.summary.failures.append(message)

    def _add_bag(self, version: Version, export: dict, digest: str) -> None:
        member = bags.bag_member(version.record.public_id, version.number, digest)
        contents = [(f"{member}/{path}", data) for path, data in bags.bag_files(version=version, export=export)]
        bag_entry = {"type": "bag", "member": member, "record": version.record.public_id, "version": version.number,
                     "digest": digest}
        # Room for the worst case (every file listed); which are listed is known once the volume is chosen.
        room = manifests.ManifestWriter.encoded_size([bag_entry, *self._file_entries(version, everything=True)])
        volume = self._volume_for(sum(VolumeWriter.member_bytes(name, len(data)) for name, data in contents), room)
        now = time.time()
        for name, data in contents:
            volume.writer.add_bytes(name, data, now)
        for entry in [bag_entry, *self._file_entries(version)]:
            volume.manifest.write(entry)
        volume.bags.append((version.pk, member, digest))

    def _file_entries(self, version: Version, everything: bool = False) -> list[dict]:
        """Manifest lines for the version's files whose bytes are in an earlier volume (those in the open volume
        are listed by their blob lines already)."""
        entries = []
        for version_file in version.files.all():
            location = self.locations.get(version_file.blob_id)
            if location is None and not everything:
                continue
            placeholder = ("nbarchive-000000-00000000", blob_member(version_file.blob.sha256), 0)  # as long
            volume_name, blob_name, offset = location or placeholder
            entries.append({"type": "file", "sha256": version_file.blob.sha256, "size": version_file.blob.size,
                            "storage_key": version_file.blob.storage_key, "record": version.record.public_id,
                            "version": version.number, "path": version_file.path, "volume": volume_name,
                            "member": blob_name, "offset": offset})
        return entries

    # --- volumes --------------------------------------------------------------------------------------
    def _volume_for(self, member_bytes: int, manifest_bytes: int) -> _OpenVolume:
        if self.volume is not None and not self.volume.empty and not self.volume.fits(
                member_bytes, manifest_bytes, self.max_bytes):
            self._commit_volume()
        if self.volume is None:
            self.volume = _OpenVolume(self.target, self.next_sequence)
            self.next_sequence += 1
        return self.volume

    def _commit_volume(self) -> None:
        volume, self.volume = self.volume, None
        try:
            volume.writer.flush_pending()
            if volume.empty:  # every blob it was to hold turned out unreadable: nothing to keep
                volume.writer.stop()
                volume.sink.abort()
                self.next_sequence = volume.sequence
                return
            manifest_bytes = volume.manifest.getvalue()
            volume.writer.add_bytes(MANIFEST_MEMBER, manifest_bytes, time.time())
            size, sha256 = volume.writer.close()
            locked_until = volume.sink.commit()
        except BaseException:
            volume.writer.stop()
            volume.sink.abort()
            raise
        finally:
            volume.manifest.close()
        self.target.write_bytes(manifest_object(volume.name), manifest_bytes)
        with transaction.atomic():
            row = BackupVolume.objects.create(
                name=volume.name, sequence=volume.sequence, target=self.target.location,
                object_name=volume_object(volume.name), manifest_name=manifest_object(volume.name), size=size,
                sha256=sha256, manifest_sha256=manifests.sha256_hex(manifest_bytes), blob_count=len(volume.copied),
                bag_count=len(volume.bags), storage_class=self.target.storage_class, locked_until=locked_until,
                run=self.run_row, created=volume.created)
            for start in range(0, len(volume.copies), 3 * COPY_CHUNK):
                chunk = volume.copies[start:start + 3 * COPY_CHUNK]
                rows = list(zip(chunk[0::3], chunk[1::3], chunk[2::3], strict=True))
                sha256s = dict(Blob.objects.filter(pk__in=[pk for pk, _, _ in rows]).values_list("pk", "sha256"))
                BackupCopy.objects.bulk_create([
                    BackupCopy(blob_id=pk, volume=row, member=blob_member(sha256s[pk]), header_offset=header,
                               data_offset=data) for pk, header, data in rows])
                self.locations.update({pk: (volume.name, blob_member(sha256s[pk]), data)
                                       for pk, _, data in rows if pk in self.batch_blobs})
            BackupBag.objects.bulk_create([BackupBag(version_id=version_id, volume=row, member=member, digest=digest)
                                           for version_id, member, digest in volume.bags])
            self.summary.volumes.append(volume.name)
            self.summary.blobs += len(volume.copied)
            self.summary.bytes += volume.copied_bytes
            self.summary.bags += len(volume.bags)
            BackupRun.objects.filter(pk=self.run_row.pk).update(
                volumes_written=len(self.summary.volumes), blobs_written=self.summary.blobs,
                bytes_written=self.summary.bytes, bags_written=self.summary.bags, heartbeat_at=timezone.now())
        catalog_write(self.target)
        logger.info("Backup volume %s: %d file(s), %d bag(s), %d bytes", volume.name, len(volume.copied),
                    len(volume.bags), size)
