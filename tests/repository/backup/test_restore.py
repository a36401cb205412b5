"""Restore: the drill (back up, lose primary storage and the database, restore from the target alone, and the
archive works again), verification without changes, and clear errors."""

import datetime
import importlib.util
import io
import json

import pytest
import requests
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from lxml import etree

from repository.backup.models import BackupBag, BackupCopy, BackupVolume
from repository.backup.restore import backup_restore
from repository.backup.services import backup_run
from repository.models import (
    AuditEvent,
    Blob,
    DoiOutbox,
    FileAccess,
    LocalDoi,
    Record,
    Version,
)
from repository.services.files import draft_file_upload
from repository.services.new_versions import version_new_draft
from repository.services.published import version_withdraw
from repository.storage import blob_storage
from tests.factories import UserFactory, accept, published_version, sync_pending
from tests.repository.backup.helpers import (
    corrupt_primary,
    corrupt_volume_member,
    empty_database,
    primary_bytes,
    random_bytes,
    sha256,
)

pytestmark = pytest.mark.django_db
OAI = "{http://www.openarchives.org/OAI/2.0/}"


def archive_with_history(owner, moderator) -> dict:
    """Three records: one with two versions (the second keeps a file and adds one), one withdrawn, one plain;
    returns what a reader could see of them, to compare after the restore."""
    first = published_version(owner, moderator, extra_files={"results.bin": random_bytes(70_000)},
                              related_identifiers=[{"identifier": "10.1234/paper", "scheme": "DOI",
                                                    "relation": "IsSupplementTo"}])
    draft = version_new_draft(record=first.record, actor=owner)
    draft_file_upload(version=draft, actor=owner, path="more.csv", stream=io.BytesIO(b"a,b\n1,2\n"), content_length=8)
    accept(draft, moderator)
    sync_pending()
    withdrawn = published_version(owner, moderator, title="Withdrawn one")
    version_withdraw(version=withdrawn, actor=UserFactory(is_superuser=True), reason="Mistaken data")
    sync_pending()
    plain = published_version(owner, moderator, title="Plain", extra_files={"blob.dat": random_bytes(30_000)})
    versions = Version.objects.filter(state__in=Version.ACCEPTED_STATES).select_related("record")
    return {
        "blobs": {b.sha256: (b.storage_key, b.size, b.md5) for b in Blob.objects.all()},
        "versions": sorted((v.record.public_id, v.number, v.state, v.doi, v.title) for v in versions),
        "concept_dois": dict(Record.objects.values_list("public_id", "concept_doi")),
        "files": {(f.version.record.public_id, f.version.number, f.path): primary_bytes(f.blob)
                  for v in versions for f in v.files.select_related("blob", "version__record")},
        "public": [first.record.public_id, plain.record.public_id],
        "withdrawn": withdrawn.record.public_id,
    }


def download(client: Client, url: str) -> bytes:
    """A file download: streamed by the app (local storage), or a redirect to a presigned S3 URL (on loopback)."""
    response = client.get(url)
    if response.status_code == 302:
        fetched = requests.get(response["Location"], timeout=30)
        assert fetched.status_code == 200, url
        return fetched.content
    assert response.status_code == 200, url
    return b"".join(response.streaming_content)


def check_the_archive_works(before: dict, owner) -> None:
    """Every checksum matches, landing pages and downloads work, DOIs resolve, OAI-PMH lists every record."""
    blobs = {b.sha256: (b.storage_key, b.size, b.md5) for b in Blob.objects.all()}
    assert blobs == before["blobs"]
    for blob in Blob.objects.all():
        assert sha256(primary_bytes(blob)) == blob.sha256
    versions = Version.objects.select_related("record")
    assert sorted((v.record.public_id, v.number, v.state, v.doi, v.title) for v in versions) == before["versions"]
    assert dict(Record.objects.values_list("public_id", "concept_doi")) == before["concept_dois"]
    assert list(get_user_model().objects.get(username=owner.username).records.order_by("public_id")
                .values_list("public_id", flat=True)) == sorted(before["concept_dois"])

    client = Client()
    for record_id in before["public"]:
        page = client.get(f"/records/{record_id}/")
        assert page.status_code == 200, record_id
    assert client.get(f"/records/{before['withdrawn']}/versions/1/").status_code == 410
    for (record_id, number, path), data in before["files"].items():
        if record_id == before["withdrawn"]:
            continue
        assert download(client, f"/records/{record_id}/versions/{number}/files/{path}") == data, path

    for outbox in DoiOutbox.objects.all():
        assert not outbox.is_pending and outbox.registrar_state == outbox.wanted_state
    first_doi = Version.objects.get(record__public_id=before["public"][0], number=1).doi
    assert LocalDoi.objects.get(doi=first_doi.lower()).state == "findable"
    assert client.get(f"/doi/{first_doi}").status_code in (301, 302)

    if importlib.util.find_spec("harvest.provider") is not None:
        response = client.get("/oai", {"verb": "ListIdentifiers", "metadataPrefix": "oai_dc"})
        assert response.status_code == 200
        listed = {e.text.rsplit(":", 1)[-1] for e in etree.fromstring(response.content).iter(f"{OAI}identifier")}
        expected = {f"{record_id}/v{number}" for record_id, number, *_ in before["versions"]}
        assert listed == expected


@pytest.mark.s3
def test_restore_drill_on_s3_from_the_backup_bucket_alone(owner, moderator, s3_blob_storage, s3_backup, settings,
                                                          capsys):
    primary, primary_bucket = s3_blob_storage
    _, backup_bucket = s3_backup
    settings.BACKUP_VOLUME_MAX_BYTES = 64 * 1024  # several volumes
    before = archive_with_history(owner, moderator)
    call_command("backup")
    assert BackupVolume.objects.count() >= 2

    # Lose everything but the backup bucket: every primary object, every row, every user but the owner.
    for page in primary.get_paginator("list_objects_v2").paginate(Bucket=primary_bucket):
        for item in page.get("Contents", []):
            primary.delete_object(Bucket=primary_bucket, Key=item["Key"])
    empty_database(keep_users=[owner])
    capsys.readouterr()

    call_command("restore", "--from", f"s3://{backup_bucket}")

    out = capsys.readouterr().out
    assert f"{len(before['blobs'])} file(s) written to primary storage" in out
    assert "recreated 3 record(s) with 4 version(s)" in out
    check_the_archive_works(before, owner)
    assert AuditEvent.objects.filter(action="record.restore").count() == 3
    # The catalog rows are back, so the next backup appends to the same bucket and writes nothing again.
    assert BackupCopy.objects.count() == len(before["blobs"])
    assert backup_run().blobs == 0
    assert backup_run().bags == 0


def test_restore_drill_from_a_local_directory(owner, moderator, backup_dir, local_blob_storage, capsys):
    before = archive_with_history(owner, moderator)
    backup_run()
    for blob in Blob.objects.all():
        blob_storage().delete(blob.storage_key)
    empty_database(keep_users=[])
    capsys.readouterr()

    call_command("restore", "--from", str(backup_dir))

    assert "recreated 3 record(s) with 4 version(s) and 1 user(s)" in capsys.readouterr().out
    restored_owner = get_user_model().objects.get(username=owner.username)
    assert restored_owner.email == owner.email and not restored_owner.has_usable_password()
    check_the_archive_works(before, owner)
    related = Version.objects.get(record__public_id=before["public"][0], number=1).related_identifiers.get()
    assert (related.identifier, related.relation) == ("10.1234/paper", "IsSupplementTo")


def test_restore_into_a_database_with_records_repairs_primary_storage_and_keeps_the_metadata(owner, moderator,
                                                                                            backup_dir, capsys):
    version = published_version(owner, moderator, extra_files={"results.bin": random_bytes(4000)})
    backup_run()
    blobs = {f.path: f.blob for f in version.files.select_related("blob")}
    blob_storage().delete(blobs["thermal.ipynb"].storage_key)
    corrupt_primary(blobs["results.bin"])

    result = backup_restore(location=str(backup_dir))

    assert result.ok and (result.blobs_written, result.blobs_intact) == (2, 1)
    assert "metadata was kept" in result.metadata
    for blob in blobs.values():
        assert sha256(primary_bytes(blob)) == blob.sha256
    assert Record.objects.count() == 1 and Version.objects.get().title == version.title


def test_verify_only_reports_a_corrupted_volume_member_changes_nothing_and_fails(owner, moderator, backup_dir, capsys):
    version = published_version(owner, moderator, extra_files={"results.bin": random_bytes(4000)})
    backup_run()
    damaged = version.files.get(path="results.bin").blob
    corrupt_volume_member(backup_dir, damaged)
    blob_storage().delete(damaged.storage_key)

    with pytest.raises(CommandError, match="problem"):
        call_command("restore", "--from", str(backup_dir), "--verify-only")

    err = capsys.readouterr().err
    assert f"blobs/{damaged.sha256[:2]}/{damaged.sha256} is damaged" in err
    assert "bytes with sha256" in err  # the volume's own checksum no longer matches the catalog either
    assert not blob_storage().exists(damaged.storage_key)


def test_verify_only_passes_on_an_intact_backup(owner, moderator, backup_dir, capsys):
    published_version(owner, moderator)
    backup_run()

    call_command("restore", "--from", str(backup_dir), "--verify-only")

    assert "Verified 1 volume(s)" in capsys.readouterr().out


def test_a_damaged_file_keeps_its_version_out_of_a_restore_and_the_rest_comes_back(owner, moderator, backup_dir):
    damaged_version = published_version(owner, moderator, extra_files={"results.bin": random_bytes(4000)})
    intact = published_version(owner, moderator, title="Intact")
    backup_run()
    damaged = damaged_version.files.get(path="results.bin").blob
    damaged_id, intact_id = damaged_version.record.public_id, intact.record.public_id
    corrupt_volume_member(backup_dir, damaged)
    for blob in Blob.objects.all():
        blob_storage().delete(blob.storage_key)
    empty_database(keep_users=[])

    result = backup_restore(location=str(backup_dir))

    assert not result.ok
    assert any("is damaged" in p for p in result.problems)
    assert any(f"{damaged_id} v1 not recreated" in p for p in result.problems)
    assert list(Record.objects.values_list("public_id", flat=True)) == [intact_id]
    assert not blob_storage().exists(damaged.storage_key)
    # The damaged member gets no BackupCopy, so the next backup would write it again from a good primary.
    assert not BackupCopy.objects.filter(blob__sha256=damaged.sha256).exists()


def test_a_tampered_manifest_is_reported(owner, moderator, backup_dir):
    published_version(owner, moderator)
    backup_run()
    volume = BackupVolume.objects.get()
    (backup_dir / volume.manifest_name).write_text('{"format": "something else"}\n')

    result = backup_restore(location=str(backup_dir), verify_only=True)

    assert any("manifest" in p and "catalog" in p for p in result.problems)


def test_a_missing_or_unreadable_target_is_a_one_line_error(tmp_path, settings):
    with pytest.raises(CommandError) as raised:
        call_command("restore", "--from", str(tmp_path / "nowhere"))
    assert str(raised.value) == f"The backup directory {tmp_path / 'nowhere'} does not exist."

    (tmp_path / "empty").mkdir()
    with pytest.raises(CommandError, match="has no catalog.json"):
        call_command("restore", "--from", str(tmp_path / "empty"), "--verify-only")

    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "catalog.json").write_text("{not json")
    with pytest.raises(CommandError, match="not a valid catalog") as raised:
        call_command("restore", "--from", str(tmp_path / "broken"))
    assert "\n" not in str(raised.value)

    with pytest.raises(CommandError, match="names no bucket"):
        call_command("restore", "--from", "s3://")


@pytest.mark.s3
def test_a_missing_bucket_is_a_one_line_error(s3_backup):
    with pytest.raises(CommandError) as raised:
        call_command("restore", "--from", "s3://no-such-bucket-here/prefix")
    assert str(raised.value) == "The bucket no-such-bucket-here does not exist (s3://no-such-bucket-here/prefix)."


def test_bags_of_later_volumes_win(owner, moderator, backup_dir):
    version = published_version(owner, moderator)
    backup_run()
    version_withdraw(version=version, actor=UserFactory(is_superuser=True), reason="Superseded")
    sync_pending()
    backup_run()
    assert BackupBag.objects.filter(version=version).count() == 2
    for blob in Blob.objects.all():
        blob_storage().delete(blob.storage_key)
    empty_database()

    backup_restore(location=str(backup_dir))

    restored = Version.objects.get()
    assert restored.state == "withdrawn" and restored.withdrawal_reason == "Superseded"
    assert BackupBag.objects.filter(version=restored).count() == 2
    with open(backup_dir / "catalog.json") as handle:
        assert len(json.load(handle)["volumes"]) == 2


@pytest.mark.s3
def test_volumes_still_in_cold_storage_stop_the_restore_with_a_clear_message(owner, moderator, s3_backup,
                                                                            monkeypatch):
    from repository.backup.s3_target import S3Target

    _, bucket = s3_backup
    published_version(owner, moderator)
    backup_run()
    # moto restores at once; a real DEEP_ARCHIVE restore takes hours.
    monkeypatch.setattr(S3Target, "make_readable", lambda self, names: list(names))

    with pytest.raises(CommandError, match="1 of 1 volume.*cold storage.*Run this again") as raised:
        call_command("restore", "--from", f"s3://{bucket}", "--verify-only")
    assert "\n" not in str(raised.value)


def test_a_restore_keeps_embargoed_and_restricted_files_closed(owner, moderator, backup_dir, local_blob_storage):
    embargoed = published_version(owner, moderator, title="Embargoed", extra_files={"secret.csv": b"x\n1\n"})
    restricted = published_version(owner, moderator, title="Restricted", extra_files={"secret.csv": b"y\n2\n"})
    until = datetime.date.today() + datetime.timedelta(days=90)
    Version.objects.filter(pk=embargoed.pk).update(access_files=FileAccess.EMBARGOED, embargo_until=until,
                                                   embargo_reason="Until the paper appears")
    Version.objects.filter(pk=restricted.pk).update(access_files=FileAccess.RESTRICTED)
    backup_run()
    empty_database(keep_users=[])

    call_command("restore", "--from", str(backup_dir))

    back = {v.title: v for v in Version.objects.filter(title__in=["Embargoed", "Restricted"])}
    assert (back["Embargoed"].access_files, back["Embargoed"].embargo_until,
            back["Embargoed"].embargo_reason) == (FileAccess.EMBARGOED, until, "Until the paper appears")
    assert back["Restricted"].access_files == FileAccess.RESTRICTED
    for version in back.values():
        url = f"/records/{version.record.public_id}/versions/{version.number}/files/secret.csv"
        assert Client().get(url).status_code == 403
