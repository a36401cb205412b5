"""Moving the backup tier and the GitLab integration into apps of their own keeps every row.

A database is migrated back to before the move (repository 0007), rows are written with the models as they were
then (the historical models of that state), and the database is migrated forward again: every row is there
through the new apps' models, with its relations, the content types (and the permissions on them) moved along,
and the tables keep taking new rows. Runs on SQLite and PostgreSQL alike.
"""

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from repository.backup.models import BackupBag, BackupCopy, BackupRun, BackupVolume, FixityCheck
from repository.gitlab.models import GitLabImport, GitLabLink

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE_THE_MOVE = [("repository", "0007_gitlab")]
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SHA = "a" * 64
MOVED = {"backup": ["backuprun", "backupvolume", "backupcopy", "backupbag", "fixitycheck"],
         "gitlab": ["gitlablink", "gitlabimport"]}


def _migrate(targets):
    """Migrate to `targets`; returns the project state the database is in then (every app's applied migrations)."""
    return MigrationExecutor(connection).migrate(targets)


def _latest() -> list[tuple[str, str]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def _write_rows_as_before(apps) -> dict:
    """Rows made with the models of repository 0007, where the backup and GitLab models were the core's."""
    user = apps.get_model("auth", "User").objects.create(username="jane")
    record = apps.get_model("repository", "Record").objects.create(public_id="abcde-12345", concept_doi="10.5072/c")
    version = apps.get_model("repository", "Version").objects.create(record=record, number=1, created_by=user,
                                                                      state="published", title="Kept")
    blob = apps.get_model("repository", "Blob").objects.create(sha256=SHA, md5="b" * 32, size=3,
                                                               storage_key=f"blobs/sha256/aa/aa/{SHA}")
    run = apps.get_model("repository", "BackupRun").objects.create(status="succeeded", trigger="schedule",
                                                                   target="/backup", finished_at=NOW, blobs_written=1)
    volume = apps.get_model("repository", "BackupVolume").objects.create(
        name="nbarchive-000001-deadbeef", sequence=1, target="/backup", object_name="volumes/v1.tar",
        manifest_name="manifests/v1.jsonl", size=20480, sha256="c" * 64, manifest_sha256="d" * 64, blob_count=1,
        bag_count=1, run=run, created=NOW)
    copy = apps.get_model("repository", "BackupCopy").objects.create(
        blob=blob, volume=volume, member=f"blobs/aa/{SHA}", header_offset=512, data_offset=1024, verified_at=NOW)
    bag = apps.get_model("repository", "BackupBag").objects.create(
        version=version, volume=volume, member="bags/abcde-12345-v1-e", digest="e" * 64)
    fixity = apps.get_model("repository", "FixityCheck").objects.create(
        blob=blob, checked_at=NOW, primary_ok=True, backup_ok=True, detail="fine")
    link = apps.get_model("repository", "GitLabLink").objects.create(
        record=record, project_id=42, project_path="jane/work", webhook_secret_hash="f" * 64, created_by=user)
    gitlab_import = apps.get_model("repository", "GitLabImport").objects.create(
        record=record, project_id=42, ref="v1.0", sha="0" * 40, version=version, status="done", source="webhook",
        requested_by=user, finished_at=NOW)
    # A permission given on a moved model before the move, as an administrator might have.
    content_type = apps.get_model("contenttypes", "ContentType").objects.get_or_create(
        app_label="repository", model="backuprun")[0]
    permission = apps.get_model("auth", "Permission").objects.get_or_create(
        content_type=content_type, codename="view_backuprun", defaults={"name": "Can view backup run"})[0]
    user.user_permissions.add(permission)
    return {"user": user.pk, "version": version.pk, "blob": blob.pk, "run": run.pk, "volume": volume.pk,
            "copy": copy.pk, "bag": bag.pk, "fixity": fixity.pk, "link": link.pk, "import": gitlab_import.pk,
            "content_type": content_type.pk, "permission": permission.pk}


def test_backup_and_gitlab_rows_made_before_the_move_are_all_there_after_it():
    latest = _latest()
    try:
        before = _write_rows_as_before(_migrate(BEFORE_THE_MOVE).apps)
        _migrate(latest)
    finally:
        _migrate(latest)  # whatever happened, the next test finds the schema it expects
    ContentType.objects.clear_cache()

    run = BackupRun.objects.get(pk=before["run"])
    assert (run.status, run.trigger, run.target, run.finished_at, run.blobs_written) == (
        "succeeded", "schedule", "/backup", NOW, 1)
    volume = BackupVolume.objects.get(pk=before["volume"])
    assert (volume.name, volume.sequence, volume.size, volume.run_id) == ("nbarchive-000001-deadbeef", 1, 20480, run.pk)
    copy = BackupCopy.objects.select_related("blob", "volume").get(pk=before["copy"])
    assert (copy.blob.sha256, copy.volume.pk, copy.data_offset, copy.verified_at) == (SHA, volume.pk, 1024, NOW)
    bag = BackupBag.objects.get(pk=before["bag"])
    assert (bag.version_id, bag.volume_id, bag.digest) == (before["version"], volume.pk, "e" * 64)
    fixity = FixityCheck.objects.get(pk=before["fixity"])
    assert (fixity.blob_id, fixity.primary_ok, fixity.backup_ok, fixity.detail) == (before["blob"], True, True, "fine")
    link = GitLabLink.objects.select_related("record").get(pk=before["link"])
    assert (link.record.public_id, link.project_id, link.project_path, link.created_by_id) == (
        "abcde-12345", 42, "jane/work", before["user"])
    gitlab_import = GitLabImport.objects.get(pk=before["import"])
    assert (gitlab_import.ref, gitlab_import.version_id, gitlab_import.status, gitlab_import.requested_by_id) == (
        "v1.0", before["version"], "done", before["user"])
    # The reverse relations the core's code follows still lead to the same rows.
    assert copy.blob.backup_copy == copy and copy.blob.fixity == fixity
    assert list(link.record.gitlab_imports.all()) == [gitlab_import]

    # The content types moved to the new apps (same rows, so permissions on them stay given); none stays behind.
    assert ContentType.objects.get_for_model(BackupRun).pk == before["content_type"]
    assert not ContentType.objects.filter(app_label="repository", model__in=sum(MOVED.values(), [])).exists()
    assert Permission.objects.get(pk=before["permission"]).content_type.app_label == "backup"

    # The tables go on taking rows (on PostgreSQL: their id sequences came along).
    assert BackupRun.objects.create(target="/backup").pk > run.pk
