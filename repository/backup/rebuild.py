"""The restore's second job: rebuild the database from what the first job read (restore.py).

Once every volume was read and checked, `records_rebuild` recreates, when the database has no Record, every
record from the latest bag of each of its versions (the exports restore.py kept): users (by username), records,
versions, creators, related identifiers, data references, blobs, version files, the DOI outbox (as synced, unless
it was pending), the embedded registrar's DOIs when DOI_PROVIDER=local and the latest verification verdict. A
version is recreated only when all of its files are in primary storage with the right checksum.

`catalog_rows_rebuild` then recreates the backup catalog rows (volumes, copies, bags), so the next backup appends
to the same target, when restoring from the configured target into a database without them.
"""

import json
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from repository.backup import bags as bagging
from repository.backup.manifest import Manifest
from repository.backup.models import BackupBag, BackupCopy, BackupVolume
from repository.backup.targets import BackupTarget, target_from_settings
from repository.models import (
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


class DatabaseRebuild:
    """Writes into `summary` (a RestoreSummary) and reports each problem through `problem`."""

    def __init__(self, target: BackupTarget, summary, problem: Callable[[str], None]):
        self.target = target
        self.summary = summary
        self.problem = problem

    def records_rebuild(self, exports: Path, available: set[str]) -> None:
        """Recreate the records whose exports (one JSON file per version, under exports/<record>/) are in
        `exports`, each version only when the sha256 of every one of its files is in `available`."""
        if not exports.exists():
            self.summary.metadata = "no metadata bags found, so no records were recreated"
            return
        skipped = 0
        for record_folder in sorted(exports.iterdir()):
            record_exports = sorted((json.loads(p.read_text()) for p in record_folder.glob("*.json")),
                                    key=lambda e: e["version"]["number"])
            complete = []
            for export in record_exports:
                missing = [f["path"] for f in export["files"] if f["sha256"] not in available]
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
            **{name: data[name] for name in bagging.VERSION_ACCESS_FIELDS if name in data},
            **{name: date.fromisoformat(data[name]) for name in bagging.VERSION_DAYS if data.get(name)},
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

    def catalog_rows_rebuild(self, volumes: list[dict], manifest_of: Callable[[dict], Manifest | None],
                             bad_members: set[tuple[str, str]]) -> None:
        """After restoring into a database without backup rows, from the configured target: recreate them, so
        the next backup appends to this target instead of refusing it or writing everything again.

        `manifest_of(volume)` is the volume's intact manifest or None; members in `bad_members` ((volume, member)
        found damaged) get no row, so the next backup writes them again."""
        if BackupVolume.objects.exists() or target_from_settings().location != self.target.location:
            return
        with transaction.atomic():
            blobs = dict(Blob.objects.values_list("sha256", "pk"))
            versions = {(r, n): pk for pk, r, n in Version.objects.values_list("pk", "record__public_id", "number")}
            for volume in volumes:
                # Read again rather than kept from the restore: a million files' manifests take memory.
                manifest = manifest_of(volume)
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
                    if entry["sha256"] in blobs and (volume["name"], member) not in bad_members:
                        copies.append(BackupCopy(blob_id=blobs.pop(entry["sha256"]), volume=row, member=member,
                                                 header_offset=entry["header_offset"], data_offset=entry["offset"]))
                BackupCopy.objects.bulk_create(copies)
                BackupBag.objects.bulk_create([
                    BackupBag(version_id=versions[(bag["record"], bag["version"])], volume=row, member=bag["member"],
                              digest=bag["digest"])
                    for bag in manifest.bags
                    if (bag["record"], bag["version"]) in versions
                    and (volume["name"], bag["member"]) not in bad_members])


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
