"""`backup_restore`: rebuild primary storage, and the records' metadata when the database is empty, from nothing
but a backup target.

It reads catalog.json, then every volume front to back (S3 volumes in an archive class are first restored on
request: BackupObjectCold until S3 has done so) and checks: the volume's size and sha256 against the catalog, the
separate manifest against its catalogued sha256 and against the copy inside the volume, every blob member's
sha256 (its name) and size, and every bag (bagit validates each payload file). Restoring, a blob whose primary
object is missing or does not match is written back under its storage key, from bytes verified first
(repository/backup/primary.py). When the database has no Record, the latest bag of every version recreates
users (by username), records, versions, creators, related identifiers, data references, blobs, version files,
the DOI outbox (as synced, unless it was pending), the embedded registrar's DOIs when DOI_PROVIDER=local and the
latest verification verdict; then the backup catalog rows, so the next backup appends to the same target.

Problems do not stop the restore: each is listed in the summary (and the command exits non-zero); a version is
recreated only when all of its files are in primary storage with the right checksum. `verify_only` reads and
checks the whole target and changes nothing.
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
from datetime import datetime
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from repository.backup import bags as bagging
from repository.backup.catalog import catalog_read
from repository.backup.errors import BackupObjectCold, BackupTargetError
from repository.backup.manifest import Manifest, manifest_parse, sha256_hex
from repository.backup.primary import Mismatch, primary_check, primary_write, spool_verified, stream_pieces
from repository.backup.targets import target_from_location, target_from_settings
from repository.backup.volumes import MANIFEST_MEMBER, README_MEMBER, read_volume
from repository.integrations.s3 import STORAGE_ERRORS
from repository.models import (
    BackupBag,
    BackupCopy,
    BackupVolume,
    Blob,
    Creator,
    DataReference,
    DoiOutbox,
    DoiState,
    ExecutionRun,
    LocalDoi,
    Record,
    RelatedIdentifier,
    Version,
    VersionFile,
)
from repository.services.audit import audit_event_append

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
        elif not self.database_empty:
            self.summary.metadata = "the database already has records, so its metadata was kept"
        else:
            self.rebuild_metadata()
        if not self.verify_only:
            self.rebuild_catalog_rows(volumes)
        self.summary.seconds = time.monotonic() - self.started
        return self.summary

    # --- volumes --------------------------------------------------------------------------------------
    def _manifest(self, volume: dict, *, report: bool = True) -> Manifest | None:
        """The volume's separate manifest, checked against the catalog; None (and a problem) when it is not."""
        if not report:
            try:
                data = self.target.read_bytes(volume["manifest"])
                return manifest_parse(data) if sha256_hex(data) == volume["manifest_sha256"] else None
            except (BackupTargetError, ValueError):
                return None
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

    # --- the database ---------------------------------------------------------------------------------
    def rebuild_metadata(self) -> None:
        if not self.exports.exists():
            self.summary.metadata = "no metadata bags found, so no records were recreated"
            return
        skipped = 0
        for record_folder in sorted(self.exports.iterdir()):
            exports = sorted((json.loads(p.read_text()) for p in record_folder.glob("*.json")),
                             key=lambda e: e["version"]["number"])
            complete = []
            for export in exports:
                missing = [f["path"] for f in export["files"] if f["sha256"] not in self.available]
                if missing:
                    skipped += 1
                    self.problem(f"{export['record']['public_id']} v{export['version']['number']} not recreated: "
                                 f"{len(missing)} of its files are not in primary storage (e.g. {missing[0]})")
                else:
                    complete.append(export)
            if complete:
                self._record_create(complete)
        self.summary.metadata = (f"recreated {self.summary.records} record(s) with {self.summary.versions} "
                                 f"version(s) and {self.summary.users} user(s)")
        if skipped:
            self.summary.metadata += f", {skipped} version(s) left out"

    def _user(self, data: dict | None):
        if not data:
            return None
        model = get_user_model()
        user = model.objects.filter(**{model.USERNAME_FIELD: data["username"]}).first()
        if user is None:
            user = model(**{model.USERNAME_FIELD: data["username"]}, email=data.get("email", ""),
                         first_name=data.get("first_name", ""), last_name=data.get("last_name", ""))
            user.set_unusable_password()  # they sign in again through a password reset or ORCID
            user.save()
            self.summary.users += 1
        return user

    @transaction.atomic
    def _record_create(self, exports: list[dict]) -> None:
        latest = exports[-1]
        data = latest["record"]
        record = Record.objects.create(public_id=data["public_id"], concept_doi=data["concept_doi"])
        if data.get("created"):
            Record.objects.filter(pk=record.pk).update(created=_parse(data["created"]))
        record.owners.set([self._user(owner) for owner in data["owners"]])
        versions = {}
        for export in exports:
            versions[export["version"]["number"]] = self._version_create(record, export)
        self.summary.records += 1
        # The DOI states: each version DOI from its own bag, the concept DOI from the latest one.
        outbox = {}
        for export in exports:
            for doi in export["dois"]:
                if doi["kind"] == DoiOutbox.Kind.VERSION:
                    outbox[doi["doi"]] = (doi, versions[export["version"]["number"]])
        for doi in latest["dois"]:
            if doi["kind"] == DoiOutbox.Kind.CONCEPT:
                outbox[doi["doi"]] = (doi, None)
        for doi, version in outbox.values():
            self._doi_create(doi, record, version)
        audit_event_append(actor=None, action="record.restore", record=record,
                           data={"from": self.target.location, "versions": sorted(versions)})

    def _version_create(self, record: Record, export: dict) -> Version:
        data = export["version"]
        # created_by is never deleted (PROTECT); an export without it falls back to an owner.
        created_by = self._user(data["created_by"]) or record.owners.order_by("pk").first()
        version = Version.objects.create(
            record=record, created_by=created_by,
            **{name: data[name] for name in bagging.VERSION_FIELDS},
            **{name: _parse(data[name]) for name in bagging.VERSION_TIMES if name != "created"},
        )
        if data.get("created"):
            Version.objects.filter(pk=version.pk).update(created=_parse(data["created"]))
        Creator.objects.bulk_create([Creator(version=version, **c) for c in export["creators"]])
        RelatedIdentifier.objects.bulk_create([RelatedIdentifier(version=version, **r)
                                               for r in export["related_identifiers"]])
        DataReference.objects.bulk_create([DataReference(version=version, **d) for d in export["data_references"]])
        for file in export["files"]:
            blob, _ = Blob.objects.get_or_create(sha256=file["sha256"], defaults={
                "md5": file["md5"], "size": file["size"], "storage_key": file["storage_key"]})
            VersionFile.objects.create(version=version, path=file["path"], blob=blob)
        run = export.get("verification")
        if run:
            ExecutionRun.objects.create(
                run_id=run["run_id"], version=version, runner=run["runner"], container_image=run["container_image"],
                notebook_path=run.get("notebook_path") or version.notebook_path, status=ExecutionRun.Status.FINISHED,
                verdict=run["verdict"], message=run.get("message", ""), finished_at=_parse(run["finished_at"]),
                logs="Restored from a backup: only the verdict was kept.")
        self.summary.versions += 1
        return version

    def _doi_create(self, doi: dict, record: Record, version: Version | None) -> None:
        # Synced as it was at the registrar; a DOI that was still pending is sent again by the sweep.
        DoiOutbox.objects.update_or_create(doi=doi["doi"], defaults={
            "kind": doi["kind"], "record": record, "version": version, "wanted_state": doi["wanted_state"],
            "registrar_state": doi["registrar_state"], "generation": 2 if doi["pending"] else 1,
            "synced_generation": 1})
        if settings.DOI_PROVIDER == "local":
            from repository.exports import record_landing_url, version_landing_url
            from repository.exports.datacite import concept_datacite_metadata, version_datacite_metadata

            registrar = doi.get("registrar") or {}
            state = registrar.get("state") or doi["registrar_state"] or doi["wanted_state"]
            if state not in DoiState.values:
                return
            if version is not None:
                url, metadata = version_landing_url(version), version_datacite_metadata(version)
            else:
                url, metadata = record_landing_url(record), concept_datacite_metadata(record)
            LocalDoi.objects.update_or_create(doi=doi["doi"], defaults={
                "state": state, "url": registrar.get("url") or url, "metadata": metadata})

    def rebuild_catalog_rows(self, volumes: list[dict]) -> None:
        """After restoring into a database without backup rows, from the configured target: recreate them, so
        the next backup appends to this target instead of refusing it or writing everything again."""
        if BackupVolume.objects.exists() or target_from_settings().location != self.target.location:
            return
        with transaction.atomic():
            blobs = dict(Blob.objects.values_list("sha256", "pk"))
            versions = {(r, n): pk for pk, r, n in Version.objects.values_list("pk", "record__public_id", "number")}
            for volume in volumes:
                # Read again rather than kept from the restore: a million files' manifests take memory.
                manifest = None if volume["name"] in self.unreadable_manifests else self._manifest(volume,
                                                                                                    report=False)
                row = BackupVolume.objects.create(
                    name=volume["name"], sequence=volume["sequence"], target=self.target.location,
                    object_name=volume["object"], manifest_name=volume["manifest"], size=volume["size"],
                    sha256=volume["sha256"], manifest_sha256=volume["manifest_sha256"],
                    blob_count=volume.get("blob_count", 0), bag_count=volume.get("bag_count", 0),
                    storage_class=volume.get("storage_class", ""),
                    locked_until=_parse(volume.get("locked_until")), created=_parse(volume["created"]))
                if manifest is None:
                    continue  # its blobs will be backed up again: better twice than with no usable copy
                copies = []
                for member, entry in manifest.blobs.items():
                    if entry["sha256"] in blobs and (volume["name"], member) not in self.bad_members:
                        copies.append(BackupCopy(blob_id=blobs.pop(entry["sha256"]), volume=row, member=member,
                                                 header_offset=entry["header_offset"], data_offset=entry["offset"]))
                BackupCopy.objects.bulk_create(copies)
                BackupBag.objects.bulk_create([
                    BackupBag(version_id=versions[(bag["record"], bag["version"])], volume=row, member=bag["member"],
                              digest=bag["digest"])
                    for bag in manifest.bags
                    if (bag["record"], bag["version"]) in versions
                    and (volume["name"], bag["member"]) not in self.bad_members])


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None

