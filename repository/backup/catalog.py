"""The catalog of volumes: BackupVolume rows in the database, and catalog.json in the target.

catalog.json is rewritten from the rows after every volume, so the target always describes itself (a volume
whose upload finished but whose rows were never committed is simply not listed, and never reused: names carry a
random part). A backup refuses to append to a target whose catalog lists volumes the database does not know, or
lacks volumes the database lists: the two would otherwise disagree about which blobs are backed up.
"""

import json

from django.utils import timezone

from repository.backup.errors import BackupIntegrityError, BackupObjectMissing, BackupTargetError
from repository.backup.models import BackupVolume
from repository.backup.targets import BackupTarget

CATALOG = "catalog.json"
FORMAT = "nbarchive-backup-catalog/1"


def volume_object(name: str) -> str:
    return f"volumes/{name}.tar"


def manifest_object(name: str) -> str:
    return f"manifests/{name}.jsonl"


def _volume_entry(volume: BackupVolume) -> dict:
    return {
        "name": volume.name,
        "sequence": volume.sequence,
        "object": volume.object_name,
        "manifest": volume.manifest_name,
        "size": volume.size,
        "sha256": volume.sha256,
        "manifest_sha256": volume.manifest_sha256,
        "blob_count": volume.blob_count,
        "bag_count": volume.bag_count,
        "storage_class": volume.storage_class,
        "locked_until": volume.locked_until.isoformat() if volume.locked_until else None,
        "created": volume.created.isoformat(),
    }


def catalog_write(target: BackupTarget) -> None:
    volumes = [_volume_entry(v) for v in BackupVolume.objects.order_by("sequence")]
    document = {"format": FORMAT, "updated": timezone.now().isoformat(), "volumes": volumes}
    target.write_bytes(CATALOG, json.dumps(document, indent=1).encode())


def catalog_read(target: BackupTarget) -> dict:
    """The target's catalog; BackupTargetError (one line) when there is none or it cannot be read."""
    try:
        data = target.read_bytes(CATALOG)
    except BackupObjectMissing:
        raise BackupTargetError(f"No backup at {target.location}: it has no {CATALOG}.") from None
    try:
        document = json.loads(data)
        if document.get("format") != FORMAT:
            raise ValueError(f"not of format {FORMAT}")
        volumes = sorted(document["volumes"], key=lambda v: v["sequence"])
        for volume in volumes:
            for key in ("name", "object", "manifest", "size", "sha256", "manifest_sha256"):
                volume[key]  # noqa: B018 - KeyError below names the missing field
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupIntegrityError(f"{CATALOG} in {target.location} is not a valid catalog: {exc}") from exc
    document["volumes"] = volumes
    return document


def catalog_check_consistent(target: BackupTarget) -> None:
    """Before appending: the target and the database must list the same volumes."""
    known = set(BackupVolume.objects.values_list("name", flat=True))
    if not target.exists(CATALOG):
        if known:
            raise BackupIntegrityError(
                f"The database lists {len(known)} backup volume(s) but {target.location} has no {CATALOG}: the "
                "backup target changed or was emptied. Point BACKUP_S3_BUCKET (or the backup directory) back at it.")
        return
    listed = {v["name"] for v in catalog_read(target)["volumes"]}
    if listed - known:
        raise BackupIntegrityError(
            f"{target.location} holds {len(listed - known)} volume(s) this database does not know (e.g. "
            f"{min(listed - known)}); restore from it first (manage.py restore --from {target.location}) "
            "or use an empty target.")
    if known - listed:
        raise BackupIntegrityError(
            f"{target.location} lacks {len(known - listed)} volume(s) the database lists (e.g. "
            f"{min(known - listed)}); the backup target changed.")
