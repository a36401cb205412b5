"""Django admin of the backup tier: what the backup run, restore and fixity check wrote; read-only."""

from django.contrib import admin

from repository.admin import ReadOnlyAdmin
from repository.backup.models import BackupCopy, BackupRun, BackupVolume, FixityCheck


@admin.register(BackupRun)
class BackupRunAdmin(ReadOnlyAdmin):
    list_display = ["started_at", "status", "trigger", "volumes_written", "blobs_written", "bytes_written",
                    "bags_written", "finished_at"]
    list_filter = ["status", "trigger"]


@admin.register(BackupVolume)
class BackupVolumeAdmin(ReadOnlyAdmin):
    list_display = ["sequence", "name", "size", "blob_count", "bag_count", "storage_class", "locked_until", "created"]
    search_fields = ["name", "sha256"]


@admin.register(BackupCopy)
class BackupCopyAdmin(ReadOnlyAdmin):
    list_display = ["blob", "volume", "member", "data_offset", "verified_at"]
    list_select_related = ["blob", "volume"]
    search_fields = ["blob__sha256", "member"]


@admin.register(FixityCheck)
class FixityCheckAdmin(ReadOnlyAdmin):
    list_display = ["blob", "checked_at", "primary_ok", "backup_ok", "repaired", "last_failure_at"]
    list_filter = ["primary_ok", "backup_ok", "repaired"]
    list_select_related = ["blob"]
    search_fields = ["blob__sha256", "detail"]
