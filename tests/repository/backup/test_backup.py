"""The backup run: tar volumes with manifests and BagIt bags in a directory or a bucket, incremental, bounded in
size, one run at a time, refusing a target that disagrees with the database."""

import io
import json
import tarfile
from datetime import timedelta
from pathlib import Path

import bagit
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from repository.backup import bags
from repository.backup.errors import BackupIntegrityError, BackupRunning
from repository.backup.models import BackupBag, BackupCopy, BackupRun, BackupVolume
from repository.backup.services import backup_pending, backup_run
from repository.models import Blob, Version
from repository.services.files import draft_file_upload
from repository.services.new_versions import version_new_draft
from repository.services.published import version_withdraw
from tests.factories import UserFactory, accept, demo_draft, published_version, sync_pending
from tests.repository.backup.helpers import (
    blob_members,
    catalog,
    corrupt_primary,
    manifest_lines,
    primary_bytes,
    random_bytes,
    sha256,
    tar_members,
)

pytestmark = pytest.mark.django_db


def test_a_backup_writes_a_tar_volume_with_every_file_its_manifest_bags_and_the_catalog(owner, moderator,
                                                                                        backup_dir, capsys):
    first = published_version(owner, moderator, extra_files={"results.bin": random_bytes(5000)})
    second = published_version(owner, moderator, title="Second")  # the same demo data: the same blob
    draft = demo_draft(owner, title="Not accepted")
    draft_file_upload(version=draft, actor=owner, path="secret.bin", stream=io.BytesIO(b"draft"), content_length=5)

    call_command("backup")

    assert "Backed up 4 file(s)" in capsys.readouterr().out
    (volume,) = BackupVolume.objects.all()
    path = backup_dir / volume.object_name
    assert path.stat().st_size == volume.size and sha256(path.read_bytes()) == volume.sha256
    members = tar_members(path)
    accepted_blobs = Blob.objects.filter(version_files__version__in=[first, second]).distinct()
    assert sorted(m for m in members if m.startswith("blobs/")) == sorted(
        f"blobs/{b.sha256[:2]}/{b.sha256}" for b in accepted_blobs)
    assert not BackupCopy.objects.filter(blob__version_files__path="secret.bin").exists()
    assert members[0] == "README.txt" and members[-1] == "manifest.jsonl"

    # Each copy's offset points at its bytes, so one member can be read without the others.
    with open(path, "rb") as stream:
        for copy in BackupCopy.objects.select_related("blob"):
            stream.seek(copy.data_offset)
            assert stream.read(copy.blob.size) == primary_bytes(copy.blob)

    # The manifest lists a blob once per version that uses it, with its key, record, version and path.
    lines = manifest_lines(backup_dir, volume.name)
    assert lines[0]["volume"] == volume.name and lines[0]["sequence"] == 1
    data = first.files.get(path="data/measurements.csv").blob
    uses = [(e["record"], e["version"], e["path"], e["storage_key"]) for e in lines if e.get("sha256") == data.sha256]
    assert sorted(uses) == sorted([(first.record.public_id, 1, "data/measurements.csv", data.storage_key),
                                   (second.record.public_id, 1, "data/measurements.csv", data.storage_key)])
    with tarfile.open(path) as archive:
        assert archive.extractfile("manifest.jsonl").read() == (backup_dir / volume.manifest_name).read_bytes()

    # The catalog in the target describes the volume as the database does.
    (entry,) = catalog(backup_dir)["volumes"]
    assert (entry["name"], entry["size"], entry["sha256"]) == (volume.name, volume.size, volume.sha256)


def test_a_bag_made_in_memory_is_the_bag_bagit_makes_of_the_same_files(owner, moderator, tmp_path):
    # Bags are made in memory (a temporary directory per version cost more than backing up its small files);
    # they must stay what bagit itself writes, tag files and manifests included, and valid.
    version = bags.versions_for_export().get(pk=published_version(owner, moderator).pk)
    export = bags.version_export(version)
    ours = dict(bags.bag_files(version=version, export=export))
    made = tmp_path / "bagit"
    for path, data in ours.items():
        if path.startswith("data/"):
            (made / path[len("data/"):]).parent.mkdir(parents=True, exist_ok=True)
            (made / path[len("data/"):]).write_bytes(data)
    bagit.make_bag(str(made), checksums=["sha256"], bag_info=bags.bag_info(version, export))
    theirs = {p.relative_to(made).as_posix(): p.read_bytes() for p in made.rglob("*") if p.is_file()}
    assert set(ours) == {"bagit.txt", "bag-info.txt", "manifest-sha256.txt", "tagmanifest-sha256.txt",
                         "data/nbarchive.json", "data/datacite.json", "data/datacite.xml"}
    # bagit lists the tag files in the order the file system returns them; that order means nothing
    tag_manifest = "tagmanifest-sha256.txt"
    assert sorted(ours.pop(tag_manifest).splitlines()) == sorted(theirs.pop(tag_manifest).splitlines())
    assert ours == theirs
    bagit.Bag(str(made)).validate()


def test_each_accepted_version_is_a_valid_bagit_bag_with_datacite_and_our_own_full_json(owner, moderator, backup_dir,
                                                                                       tmp_path):
    version = published_version(owner, moderator, extra_files={"results.bin": b"1234"})

    backup_run()

    (bag_row,) = BackupBag.objects.all()
    with tarfile.open(backup_dir / bag_row.volume.object_name) as archive:
        archive.extractall(tmp_path / "out", filter="data")
    bag = bagit.Bag(str(tmp_path / "out" / bag_row.member))
    bag.validate()
    assert set(bag.payload_files()) == {"data/nbarchive.json", "data/datacite.json", "data/datacite.xml"}
    assert bag.info["External-Identifier"] == version.doi
    data = Path(bag.path) / "data"
    assert json.loads((data / "datacite.json").read_text())["doi"] == version.doi
    assert version.doi in (data / "datacite.xml").read_text()
    export = json.loads((data / "nbarchive.json").read_text())
    assert export["record"]["public_id"] == version.record.public_id
    assert export["record"]["concept_doi"] == version.record.concept_doi
    assert export["record"]["owners"] == [{"username": owner.username, "email": owner.email, "first_name": "",
                                           "last_name": ""}]
    assert export["version"]["state"] == "published" and export["version"]["public_changed_at"]
    assert export["creators"][0]["name"] == "Doe, Jane"
    assert {f["path"]: f["sha256"] for f in export["files"]} == {
        f.path: f.blob.sha256 for f in version.files.select_related("blob")}
    assert {d["kind"]: d["registrar_state"] for d in export["dois"]} == {"version": "findable", "concept": "findable"}


def test_a_second_backup_writes_no_blob_twice_and_only_what_is_new(owner, moderator, backup_dir, capsys):
    first = published_version(owner, moderator)
    backup_run()
    # A new version keeps both files and adds one; a new record shares the demo files.
    draft = version_new_draft(record=first.record, actor=owner)
    draft_file_upload(version=draft, actor=owner, path="more.csv", stream=io.BytesIO(b"x,y\n1,2\n"), content_length=8)
    accept(draft, moderator)
    sync_pending()

    summary = backup_run()

    assert summary.blobs == 1 and len(summary.volumes) == 1
    # The new version's bag, and the first version's again (its record now lists two versions).
    assert summary.bags == 2
    members = blob_members(backup_dir)
    assert len(members) == len(set(members)) == 3
    assert BackupCopy.objects.count() == 3
    # The second volume's manifest points at the first volume for the files the new version kept.
    second = BackupVolume.objects.get(sequence=2)
    kept = [e for e in manifest_lines(backup_dir, second.name) if e.get("type") == "file"]
    assert {e["path"] for e in kept if e["version"] == 2} == {"thermal.ipynb", "data/measurements.csv"}
    assert {e["volume"] for e in kept} == {BackupVolume.objects.get(sequence=1).name}

    nothing = backup_run()
    assert (nothing.blobs, nothing.bags, nothing.volumes, nothing.versions_unchanged) == (0, 0, [], 2)
    assert len(catalog(backup_dir)["volumes"]) == 2
    assert backup_pending() == (0, 0)


def test_changed_metadata_is_backed_up_again_as_a_new_bag_without_the_files(owner, moderator, backup_dir):
    version = published_version(owner, moderator)
    backup_run()

    version_withdraw(version=version, actor=UserFactory(is_superuser=True), reason="Wrong data")
    summary = backup_run()

    assert (summary.blobs, summary.bags) == (0, 1)
    latest = BackupBag.objects.filter(version=version).order_by("-id").first()
    with tarfile.open(backup_dir / latest.volume.object_name) as archive:
        export = json.load(archive.extractfile(f"{latest.member}/data/nbarchive.json"))
    assert export["version"]["state"] == "withdrawn" and export["version"]["withdrawal_reason"] == "Wrong data"


def test_volumes_respect_the_maximum_size_and_a_larger_file_gets_a_volume_of_its_own(owner, moderator, backup_dir,
                                                                                      settings):
    settings.BACKUP_VOLUME_MAX_BYTES = 64 * 1024
    files = {f"part{i}.bin": random_bytes(20_000) for i in range(6)}
    files["huge.bin"] = random_bytes(100_000)
    published_version(owner, moderator, extra_files=files)

    summary = backup_run()

    volumes = list(BackupVolume.objects.order_by("sequence"))
    assert len(volumes) >= 4 and summary.blobs == 9
    huge = Blob.objects.get(size=100_000)
    for volume in volumes:
        size = (backup_dir / volume.object_name).stat().st_size
        assert size == volume.size
        if volume.copies.filter(blob=huge).exists():
            assert volume.blob_count == 1
        else:
            assert size <= settings.BACKUP_VOLUME_MAX_BYTES
    assert [v.sequence for v in volumes] == list(range(1, len(volumes) + 1))
    assert [v["name"] for v in catalog(backup_dir)["volumes"]] == [v.name for v in volumes]
    members = blob_members(backup_dir)
    assert len(members) == len(set(members)) == 9


def test_a_corrupt_primary_object_is_not_backed_up_and_is_reported(owner, moderator, backup_dir, capsys):
    version = published_version(owner, moderator, extra_files={"results.bin": random_bytes(3000)})
    damaged = version.files.get(path="results.bin").blob
    corrupt_primary(damaged)

    with pytest.raises(CommandError, match="1 file"):
        call_command("backup")

    assert f"sha256:{damaged.sha256}" in capsys.readouterr().err
    assert not BackupCopy.objects.filter(blob=damaged).exists()
    assert BackupCopy.objects.count() == 2
    assert f"blobs/{damaged.sha256[:2]}/{damaged.sha256}" not in blob_members(backup_dir)
    # Its version's bag waits until every file of it is backed up.
    assert not BackupBag.objects.exists()
    run = BackupRun.objects.get()
    assert run.status == "failed" and damaged.sha256 in run.error
    # The volume holds the other members intact: a restore verifies it.
    call_command("restore", "--from", str(backup_dir), "--verify-only")


def test_only_one_backup_runs_at_a_time_and_an_abandoned_run_is_taken_over(owner, moderator):
    published_version(owner, moderator)
    running = BackupRun.objects.create(target="elsewhere")

    with pytest.raises(BackupRunning):
        backup_run()

    BackupRun.objects.filter(pk=running.pk).update(heartbeat_at=timezone.now() - timedelta(hours=7))
    assert backup_run().blobs == 2
    running.refresh_from_db()
    assert running.status == "failed" and "abandoned" in running.error


def test_a_target_holding_volumes_the_database_does_not_know_is_refused(owner, moderator, backup_dir):
    published_version(owner, moderator)
    backup_run()
    document = catalog(backup_dir)
    document["volumes"].append({**document["volumes"][0], "name": "nbarchive-000002-someone", "sequence": 2})
    (backup_dir / "catalog.json").write_text(json.dumps(document))

    with pytest.raises(BackupIntegrityError, match="does not know"):
        backup_run()


def test_the_backup_command_says_in_one_line_why_the_target_cannot_be_used(settings, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    settings.STORAGES = {**settings.STORAGES, "backup": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(blocker / "backup")}}}

    with pytest.raises(CommandError, match="Cannot create the backup directory") as raised:
        call_command("backup")

    assert "\n" not in str(raised.value)


@pytest.mark.s3
def test_s3_volumes_get_the_cold_storage_class_and_an_object_lock_and_the_catalog_stays_standard(
        owner, moderator, s3_backup):
    client, bucket = s3_backup
    published_version(owner, moderator)

    backup_run()

    volume = BackupVolume.objects.get()
    head = client.head_object(Bucket=bucket, Key=volume.object_name)
    assert head["StorageClass"] == "DEEP_ARCHIVE" and head["ContentLength"] == volume.size
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert head["ObjectLockRetainUntilDate"] > timezone.now()
    assert volume.locked_until is not None and volume.storage_class == "DEEP_ARCHIVE"
    assert volume.target == f"s3://{bucket}"
    assert client.head_object(Bucket=bucket, Key="catalog.json").get("StorageClass", "STANDARD") == "STANDARD"
    assert json.loads(client.get_object(Bucket=bucket, Key="catalog.json")["Body"].read())["volumes"][0]["name"] == (
        volume.name)


@pytest.mark.s3
def test_a_bucket_without_object_lock_gets_volumes_without_retention(owner, moderator, s3_backup, settings):
    client, _ = s3_backup
    plain = "backup-plain-" + s3_backup[1][-8:]
    client.create_bucket(Bucket=plain)
    settings.STORAGES["backup"]["OPTIONS"]["bucket_name"] = plain
    settings.BACKUP_S3_STORAGE_CLASS = "STANDARD"
    settings.BACKUP_S3_PREFIX = "nbarchive/"
    published_version(owner, moderator)

    backup_run()

    volume = BackupVolume.objects.get()
    assert volume.locked_until is None and volume.target == f"s3://{plain}/nbarchive"
    head = client.head_object(Bucket=plain, Key=f"nbarchive/{volume.object_name}")
    assert "ObjectLockMode" not in head


def test_the_nightly_task_runs_a_backup_and_is_scheduled(owner, moderator):
    from repository.backup.tasks import backup_task, fixity_check_task
    from repository.celery import app

    published_version(owner, moderator)

    assert "2 file(s)" in backup_task.apply().get()
    assert "already running" not in backup_task.apply().get()
    schedule = app.conf.beat_schedule
    assert schedule["backup-nightly"]["task"] == "repository.tasks.backup_task"
    assert schedule["fixity-check-nightly"]["task"] == "repository.tasks.fixity_check_task"
    # Beat and messages queued before the tasks moved to repository/backup/tasks.py name them so.
    assert app.tasks["repository.tasks.backup_task"].run is backup_task.run
    assert app.tasks["repository.tasks.fixity_check_task"].run is fixity_check_task.run
    assert Version.objects.get().backup_bags.count() == 1


def test_a_target_failing_mid_run_leaves_the_earlier_volumes_complete_and_catalogued(owner, moderator, backup_dir,
                                                                                     settings, monkeypatch):
    from repository.backup import targets

    settings.BACKUP_VOLUME_MAX_BYTES = 64 * 1024
    published_version(owner, moderator, extra_files={f"part{i}.bin": random_bytes(30_000) for i in range(5)})
    commit = targets._LocalSink.commit
    calls = []

    def failing_commit(sink):
        calls.append(sink)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return commit(sink)

    monkeypatch.setattr(targets._LocalSink, "commit", failing_commit)

    with pytest.raises(CommandError) as raised:
        call_command("backup")

    assert "No space left on device" in str(raised.value) and "\n" not in str(raised.value)
    (volume,) = BackupVolume.objects.all()
    assert [v["name"] for v in catalog(backup_dir)["volumes"]] == [volume.name]
    assert sorted(p.name for p in (backup_dir / "volumes").iterdir()) == [f"{volume.name}.tar"]
    assert BackupRun.objects.get().status == "failed"
    call_command("restore", "--from", str(backup_dir), "--verify-only")

    monkeypatch.setattr(targets._LocalSink, "commit", commit)
    summary = backup_run()
    assert BackupCopy.objects.count() == 7 and summary.blobs == 7 - volume.blob_count
    members = blob_members(backup_dir)
    assert len(members) == len(set(members)) == 7
