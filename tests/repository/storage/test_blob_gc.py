"""The blob garbage collector: unused bytes are marked, deleted only after the grace period, published ones never."""

import io
import os
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db.models import Q
from django.utils import timezone

from repository import storage
from repository.errors import ProtectedObject
from repository.models import Blob, ExecutionRun, Version
from repository.services import blobs
from repository.services.blobs import blob_gc
from repository.services.files import draft_file_delete
from repository.services.new_versions import draft_discard
from repository.tasks import blob_gc_task
from tests.factories import upload
from tests.repository.storage.helpers import content_key, draft, local_files

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def discarded_blob(user, data: bytes = b"a draft nobody wants") -> Blob:
    version = draft(user)
    upload(version, user, "unwanted.bin", data)
    blob = Blob.objects.get(sha256=version.files.get().blob.sha256)
    draft_discard(version=version, actor=user)
    return blob


def exists(blob: Blob) -> bool:
    return storage.object_exists(blob.storage_key)


def test_an_unused_blob_is_marked_on_one_pass_and_deleted_on_a_later_one(user, settings):
    settings.BLOB_GC_GRACE_HOURS = 0
    blob = discarded_blob(user)

    first = blob_gc_task.apply().get()

    blob.refresh_from_db()
    assert blob.unreferenced_since is not None and exists(blob)
    assert "marked 1" in first

    second = blob_gc_task.apply().get()

    assert not Blob.objects.filter(pk=blob.pk).exists()
    assert not exists(blob)
    assert "deleted 1 unused blobs" in second


def test_the_bytes_stay_for_the_whole_grace_period(user):
    blob = discarded_blob(user)
    blob_gc(grace=timedelta(hours=72))  # marks it

    Blob.objects.filter(pk=blob.pk).update(unreferenced_since=timezone.now() - timedelta(hours=71))
    blob_gc(grace=timedelta(hours=72))
    assert Blob.objects.filter(pk=blob.pk).exists() and exists(blob)

    Blob.objects.filter(pk=blob.pk).update(unreferenced_since=timezone.now() - timedelta(hours=73))
    report = blob_gc(grace=timedelta(hours=72))
    assert not Blob.objects.filter(pk=blob.pk).exists() and not exists(blob)
    assert (report.deleted, report.bytes_freed) == (1, blob.size)


def test_a_blob_that_a_file_deleted_from_one_draft_shares_with_another_is_kept(user):
    data = b"shared by two drafts"
    first, second = draft(user), draft(user)
    upload(first, user, "a.bin", data)
    upload(second, user, "b.bin", data)
    draft_file_delete(version=first, actor=user, path="a.bin")

    report = blob_gc(grace=timedelta(0))
    blob_gc(grace=timedelta(0))

    assert report.marked == 0
    assert Blob.objects.get().unreferenced_since is None


def test_a_marked_blob_uploaded_again_is_unmarked_and_kept(user):
    data = b"wanted after all"
    blob = discarded_blob(user, data)
    blob_gc(grace=timedelta(0))
    assert Blob.objects.get(pk=blob.pk).unreferenced_since is not None

    version = draft(user)
    upload(version, user, "again.bin", data)

    assert Blob.objects.get(pk=blob.pk).unreferenced_since is None
    blob_gc(grace=timedelta(0))
    assert exists(Blob.objects.get(pk=blob.pk))


def test_a_marked_blob_that_is_used_again_is_unmarked_by_the_next_pass(user):
    version = draft(user)
    upload(version, user, "kept.bin", b"in use")
    Blob.objects.update(unreferenced_since=timezone.now() - DAY)  # as if marked while briefly unused

    report = blob_gc(grace=timedelta(0))

    assert report.unmarked == 1 and report.deleted == 0
    assert Blob.objects.get().unreferenced_since is None


def test_the_executed_notebook_of_a_run_keeps_its_blob(user):
    blob = discarded_blob(user, b"an executed notebook")
    other = draft(user)
    ExecutionRun.objects.create(version=other, runner="local", notebook_path="nb.ipynb", executed_notebook=blob)
    Blob.objects.filter(pk=blob.pk).update(unreferenced_since=timezone.now() - DAY)

    blob_gc(grace=timedelta(0))
    blob_gc(grace=timedelta(0))

    assert Blob.objects.filter(pk=blob.pk, unreferenced_since=None).exists() and exists(blob)


def published_blob(user) -> Blob:
    version = draft(user)
    upload(version, user, "result.bin", b"published bytes")
    Version.objects.filter(pk=version.pk).update(state=Version.State.PUBLISHED)
    return version.files.get().blob


def test_a_published_object_is_never_deleted_by_the_collector(user):
    blob = published_blob(user)
    Blob.objects.filter(pk=blob.pk).update(unreferenced_since=timezone.now() - 30 * DAY)  # a stale mark

    report = blob_gc(grace=timedelta(0))

    assert report.deleted == 0
    assert Blob.objects.filter(pk=blob.pk, unreferenced_since=None).exists() and exists(blob)


def test_even_a_collector_that_misjudged_what_is_used_cannot_delete_a_published_object(user, monkeypatch):
    blob = published_blob(user)
    Blob.objects.filter(pk=blob.pk).update(unreferenced_since=timezone.now() - 30 * DAY)
    monkeypatch.setattr(blobs, "_used", lambda: Q(pk__in=[]))  # a bug: "nothing uses any blob"

    report = blob_gc(grace=timedelta(0))

    assert report.deleted == 0 and report.problems
    assert Blob.objects.filter(pk=blob.pk).exists() and exists(blob)


def test_published_keys_are_refused_by_the_storage_layer(user):
    blob = published_blob(user)

    with pytest.raises(ProtectedObject):
        storage.delete_object(blob.storage_key)
    assert storage.delete_quietly(blob.storage_key) is False
    assert exists(blob)


def test_a_row_whose_bytes_the_collector_removed_is_replaced_by_a_new_upload(user, local_blob_storage):
    data = b"the collector crashed after deleting the object"
    blob = discarded_blob(user, data)
    Blob.objects.filter(pk=blob.pk).update(unreferenced_since=timezone.now() - DAY)
    (local_blob_storage / blob.storage_key).unlink()

    version = draft(user)
    upload(version, user, "again.bin", data)

    new = version.files.get().blob
    assert new.pk != blob.pk and exists(new)
    assert not Blob.objects.filter(pk=blob.pk).exists()


def old_temporary_file(root, name: str, age: timedelta, data: bytes = b"partial upload"):
    path = root / storage.TEMPORARY_PREFIX / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    stamp = (timezone.now() - age).timestamp()
    os.utime(path, (stamp, stamp))
    return path


def test_temporary_objects_of_crashed_uploads_go_after_the_grace_period(user, local_blob_storage):
    crashed = old_temporary_file(local_blob_storage, "crashed", 4 * DAY)
    recent = old_temporary_file(local_blob_storage, "in-flight", timedelta(minutes=5))

    report = blob_gc(grace=timedelta(hours=72))

    assert report.temporary_deleted == 1
    assert not crashed.exists() and recent.exists()


def test_a_temporary_object_a_blob_still_points_at_is_moved_not_deleted(user, local_blob_storage):
    data = b"uploaded while the broker was down"
    upload(draft(user), user, "a.bin", data)  # its promote task was never run
    blob = Blob.objects.get()
    Blob.objects.filter(pk=blob.pk).update(created=timezone.now() - DAY)
    stamp = (timezone.now() - 4 * DAY).timestamp()
    os.utime(local_blob_storage / blob.storage_key, (stamp, stamp))

    report = blob_gc(grace=timedelta(hours=72))

    assert report.promoted == 1 and report.temporary_deleted == 0
    assert Blob.objects.get().storage_key == content_key(data)
    assert local_files(local_blob_storage) == {content_key(data): data}


def test_a_dry_run_changes_nothing(user, local_blob_storage):
    blob = discarded_blob(user)
    Blob.objects.filter(pk=blob.pk).update(unreferenced_since=timezone.now() - 4 * DAY)
    crashed = old_temporary_file(local_blob_storage, "crashed", 4 * DAY)
    before = local_files(local_blob_storage)

    report = blob_gc(grace=timedelta(hours=72), dry_run=True)

    assert (report.deleted, report.temporary_deleted) == (1, 1)
    assert "would delete" in report.line()
    assert local_files(local_blob_storage) == before and crashed.exists()
    assert Blob.objects.filter(pk=blob.pk).exists()


def test_the_command_reports_a_pass(user):
    discarded_blob(user)
    out = io.StringIO()

    call_command("gc_blobs", "--grace-hours", "0", stdout=out)
    call_command("gc_blobs", "--grace-hours", "0", stdout=out)

    assert "marked 1" in out.getvalue() and "deleted 1 unused blobs" in out.getvalue()
    assert Blob.objects.count() == 0
