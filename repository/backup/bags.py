"""The self-describing metadata export: one BagIt bag (RFC 8493, `bagit` library) per accepted version.

A bag holds, under data/:
- nbarchive.json — our own export (`version_export`): everything a restore needs to rebuild the version's rows
  with nothing else at hand: the record (public id, concept DOI, owners' usernames and e-mails, its accepted
  versions), every field of the version (state, withdrawal, public_changed_at, ...), creators, related
  identifiers, data references, the files (path -> sha256, md5, size, storage key), the DOI outbox states (and
  the embedded registrar's, when it holds them) and the latest verification verdict;
- datacite.json and datacite.xml — the DataCite 4.5 metadata, readable by anyone without this software.

The bag carries no file contents: those are the volume's blob members, named by the sha256 the bag lists.
`export_digest` is the sha256 of nbarchive.json's canonical form (without its export time); a backup writes a new
bag whenever it changes.

A backup makes its bags in memory (`bag_files`, what bagit's make_bag writes); a restore validates them with bagit.
"""

import datetime
import hashlib
import json
import logging
import re
from pathlib import Path

import bagit
from django.conf import settings
from django.db.models import Prefetch, QuerySet

from repository.exports.datacite import datacite_xml, version_datacite_metadata
from repository.models import DoiOutbox, ExecutionRun, LocalDoi, Version, VersionFile
from repository.selectors import CREATOR_FIELDS, REFERENCE_FIELDS

logger = logging.getLogger(__name__)
# bagit logs every file it hashes at INFO; one bag per version would bury the backup's own log lines.
logging.getLogger("bagit").setLevel(logging.WARNING)

EXPORT_FORMAT = "nbarchive-version/1"
EXPORT_FILE = "nbarchive.json"

VERSION_FIELDS = (
    "number", "state", "doi", "title", "description", "resource_type", "version_label", "license", "keywords",
    "funding", "container_image", "notebook_path", "comparison_tolerance", "withdrawal_reason",
)
VERSION_TIMES = ("created", "submitted_at", "published_at", "withdrawn_at", "public_changed_at")
# Who may read the files (issue 17). Without them a restore would open an embargoed or restricted version's files
# to everyone; a bag made before they existed describes an open version, the only kind there was.
VERSION_ACCESS_FIELDS = ("access_files", "embargo_reason")
VERSION_DAYS = ("embargo_until",)


def versions_for_export() -> QuerySet[Version]:
    """Accepted versions with everything `version_export` and the DataCite export read, in a fixed number of
    queries per batch."""
    return (
        Version.objects.filter(state__in=Version.ACCEPTED_STATES)
        .select_related("record", "created_by")
        .prefetch_related(
            "creators", "related_identifiers", "data_references", "record__owners", "record__dois",
            Prefetch("files", queryset=VersionFile.objects.select_related("blob").order_by("path")),
            Prefetch("record__versions", queryset=Version.objects.order_by("number")),
        )
        .order_by("pk")
    )


def _time(value) -> str | None:
    return value.isoformat() if value else None


def _user(user) -> dict | None:
    if user is None:
        return None
    return {"username": user.get_username(), "email": user.email, "first_name": user.first_name,
            "last_name": user.last_name}


def _doi_state(row: DoiOutbox, registrar: dict) -> dict:
    local = registrar.get(row.doi)
    return {
        "doi": row.doi, "kind": row.kind, "wanted_state": row.wanted_state, "registrar_state": row.registrar_state,
        "pending": row.is_pending,
        "registrar": {"state": local.state, "url": local.url} if local else None,
    }


def version_export(version: Version) -> dict:
    """Our own full JSON of an accepted version (see the module docstring)."""
    record = version.record
    outbox = [row for row in record.dois.all()
              if row.kind == DoiOutbox.Kind.CONCEPT or row.version_id == version.pk]
    registrar = {row.doi: row for row in LocalDoi.objects.filter(doi__in=[row.doi for row in outbox])}
    run = (ExecutionRun.objects.filter(version=version, status=ExecutionRun.Status.FINISHED)
           .order_by("-finished_at", "-id").only("run_id", "verdict", "message", "finished_at", "runner",
                                                 "container_image", "notebook_path")
           .first())
    return {
        "format": EXPORT_FORMAT,
        "record": {
            "public_id": record.public_id,
            "concept_doi": record.concept_doi,
            "created": _time(record.created),
            "owners": sorted((_user(owner) for owner in record.owners.all()), key=lambda u: u["username"]),
            "versions": [{"number": v.number, "doi": v.doi, "state": v.state}
                         for v in record.versions.all() if v.state in Version.ACCEPTED_STATES],
        },
        "version": {
            **{name: getattr(version, name) for name in VERSION_FIELDS},
            **{name: _time(getattr(version, name)) for name in VERSION_TIMES},
            **{name: getattr(version, name) for name in VERSION_ACCESS_FIELDS},
            **{name: _time(getattr(version, name)) for name in VERSION_DAYS},
            "created_by": _user(version.created_by),
        },
        "creators": [{"position": c.position, **{f: getattr(c, f) for f in CREATOR_FIELDS}}
                     for c in version.creators.all()],
        "related_identifiers": [{"position": r.position, "identifier": r.identifier, "scheme": r.scheme,
                                 "relation": r.relation} for r in version.related_identifiers.all()],
        "data_references": [{"position": d.position, **{f: getattr(d, f) for f in REFERENCE_FIELDS}}
                            for d in version.data_references.all()],
        "files": [{"path": f.path, "sha256": f.blob.sha256, "md5": f.blob.md5, "size": f.blob.size,
                   "storage_key": f.blob.storage_key} for f in version.files.all()],
        "dois": sorted((_doi_state(row, registrar) for row in outbox), key=lambda d: (d["kind"], d["doi"])),
        "verification": {"run_id": str(run.run_id), "verdict": run.verdict, "message": run.message,
                         "finished_at": _time(run.finished_at), "runner": run.runner,
                         "container_image": run.container_image, "notebook_path": run.notebook_path} if run else None,
    }


def _canonical(data: dict) -> bytes:
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def export_digest(export: dict) -> str:
    return hashlib.sha256(_canonical({k: v for k, v in export.items() if k != "exported_at"})).hexdigest()


def bag_member(public_id: str, number: int, digest: str) -> str:
    return f"bags/{public_id}-v{number}-{digest[:16]}"


def bag_files(*, version: Version, export: dict) -> list[tuple[str, bytes]]:
    """The files of a complete, valid bag of `version` as (path inside the bag, contents), sorted by path.

    Made in memory, byte for byte what `bagit.make_bag` writes for the same payload (tested against it): making
    the bag in a temporary directory cost 20-40 ms of file system calls a version, more than the per-file work
    of backing up its files when they are small."""
    export = {**export, "exported_at": datetime.datetime.now(datetime.UTC).isoformat()}
    payload = {EXPORT_FILE: json.dumps(export, ensure_ascii=False, indent=1, sort_keys=True).encode()}
    try:
        metadata = version_datacite_metadata(version)
        payload["datacite.json"] = json.dumps(metadata, ensure_ascii=False, indent=1).encode()
        payload["datacite.xml"] = datacite_xml(metadata).encode()
    except Exception:  # noqa: BLE001 - our own export is what a restore needs; DataCite's is for other readers
        logger.exception("DataCite export of %s failed; its bag has nbarchive.json only", version)
    files = {f"data/{name}": data for name, data in sorted(payload.items())}
    info = {**bag_info(version, export), "Bagging-Date": datetime.date.today().strftime("%Y-%m-%d"),
            "Bag-Software-Agent": f"bagit.py v{bagit.VERSION} <{bagit.PROJECT_URL}>",
            "Payload-Oxum": f"{sum(len(data) for data in files.values())}.{len(files)}"}
    tags = {
        "bagit.txt": b"BagIt-Version: 0.97\nTag-File-Character-Encoding: UTF-8\n",
        "bag-info.txt": "".join(f"{key}: {_tag_value(info[key])}\n" for key in sorted(info)).encode(),
        "manifest-sha256.txt": "".join(f"{_sha256(data)}  {path}\n" for path, data in files.items()).encode(),
    }
    tags["tagmanifest-sha256.txt"] = "".join(f"{_sha256(data)} {name}\n" for name, data in tags.items()).encode()
    return sorted({**files, **tags}.items())


def bag_info(version: Version, export: dict) -> dict[str, str]:
    """The bag-info.txt fields of a version's bag (bagit adds the date, its agent and the Payload-Oxum)."""
    record = export["record"]
    return {
        "Source-Organization": settings.DOI_PUBLISHER,
        "External-Identifier": version.doi or f"{record['public_id']}/v{version.number}",
        "External-Description": (version.title or "")[:500],
        "Bag-Group-Identifier": record["concept_doi"] or record["public_id"],
        "nbarchive-Record": record["public_id"],
        "nbarchive-Version": str(version.number),
        "nbarchive-Metadata-Digest": export_digest(export),
    }


def _tag_value(value) -> str:
    return re.sub(r"\n|\r|(\r\n)", "", str(value))  # as bagit writes tag values: no line breaks


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bag_read(directory: Path) -> dict:
    """Validate the bag in `directory` (bagit: every payload file's sha256, no file missing or extra) and return
    its nbarchive.json. Raises bagit.BagError (BagValidationError) or ValueError."""
    bag = bagit.Bag(str(directory))
    bag.validate()
    export = json.loads((directory / "data" / EXPORT_FILE).read_text())
    if export.get("format") != EXPORT_FORMAT:
        raise ValueError(f"{EXPORT_FILE} is not of format {EXPORT_FORMAT}")
    return export
