"""Looking into a backup target and breaking things on purpose, for the backup tier's tests."""

import hashlib
import json
import os
import subprocess
from pathlib import Path

from django.contrib.auth import get_user_model

from moderation.models import ReviewEvent, ReviewRequest
from repository.backup.models import BackupBag, BackupCopy, BackupRun, BackupVolume, FixityCheck
from repository.models import (
    AccessToken,
    AuditEvent,
    Blob,
    Creator,
    DataReference,
    DoiOutbox,
    ExecutionRun,
    LocalDoi,
    Record,
    RelatedIdentifier,
    Version,
    VersionFile,
)
from repository.storage import blob_storage


def catalog(backup_dir: Path) -> dict:
    return json.loads((backup_dir / "catalog.json").read_text())


def tar_members(volume: Path) -> list[str]:
    """The member names as the system's own tar reads them: the volumes are plain POSIX tar files."""
    listing = subprocess.run(["tar", "-tf", str(volume)], capture_output=True, text=True, check=True)
    return listing.stdout.split()


def blob_members(backup_dir: Path) -> list[str]:
    return [m for volume in sorted((backup_dir / "volumes").glob("*.tar")) for m in tar_members(volume)
            if m.startswith("blobs/")]


def manifest_lines(backup_dir: Path, volume_name: str) -> list[dict]:
    text = (backup_dir / "manifests" / f"{volume_name}.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def primary_bytes(blob: Blob) -> bytes:
    with blob_storage().open(blob.storage_key, "rb") as stream:
        return stream.read()


def corrupt_primary(blob: Blob) -> None:
    """Flip one byte of the blob's primary object in place (bit rot), keeping its size."""
    data = bytearray(primary_bytes(blob))
    data[len(data) // 2] ^= 0xFF
    storage = blob_storage()
    storage.delete(blob.storage_key)
    from django.core.files.base import ContentFile

    assert storage.save(blob.storage_key, ContentFile(bytes(data))) == blob.storage_key


def corrupt_volume_member(backup_dir: Path, blob: Blob) -> None:
    """Flip one byte inside the blob's member in its (local) volume."""
    copy = BackupCopy.objects.select_related("volume").get(blob=blob)
    path = backup_dir / copy.volume.object_name
    with open(path, "r+b") as volume:
        volume.seek(copy.data_offset + blob.size // 2)
        byte = volume.read(1)
        volume.seek(copy.data_offset + blob.size // 2)
        volume.write(bytes([byte[0] ^ 0xFF]))


def random_bytes(size: int) -> bytes:
    return os.urandom(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def empty_database(*, keep_users=()) -> None:
    """Delete every row a restore recreates, and all users but `keep_users`: the disaster a restore undoes."""
    for model in (ReviewEvent, ReviewRequest, BackupCopy, BackupBag, BackupVolume, BackupRun, FixityCheck, AuditEvent,
                  ExecutionRun, DoiOutbox, LocalDoi, VersionFile, DataReference, Creator, RelatedIdentifier,
                  AccessToken):
        model.objects.all().delete()
    Version.objects.all().delete()
    Record.objects.all().delete()
    Blob.objects.all().delete()
    get_user_model().objects.exclude(pk__in=[u.pk for u in keep_users]).delete()
