"""The backup tier's catalog: volumes written to the backup target, which blob and bag went where, runs, fixity.

The target holds the same catalog (catalog.json and one manifest per volume), so a restore needs nothing but the
target; these rows let a backup run stay incremental (a blob with a BackupCopy is never written again) and let
the fixity check read one member straight from its volume. Rows are written only by repository.backup.

The tables keep the names they had when these models belonged to the repository app (`db_table`): the move to
this app changed no row (migrations/0001_initial.py).
"""

from django.db import models
from django.db.models import Q


class BackupRun(models.Model):
    """One run of `backup_run`. At most one runs at a time (the partial unique constraint is the lock)."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    trigger = models.CharField(max_length=20, blank=True, help_text="command, schedule, ...")
    target = models.CharField(max_length=600, help_text="Where it wrote: a directory or s3://bucket/prefix.")
    started_at = models.DateTimeField(auto_now_add=True)
    heartbeat_at = models.DateTimeField(auto_now=True, help_text="Updated after every volume.")
    finished_at = models.DateTimeField(null=True, blank=True)
    volumes_written = models.PositiveIntegerField(default=0)
    blobs_written = models.PositiveIntegerField(default=0)
    bytes_written = models.BigIntegerField(default=0, help_text="Bytes of blob contents written.")
    bags_written = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        db_table = "repository_backuprun"
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["status"], condition=Q(status="running"), name="one_backup_running"),
        ]

    def __str__(self) -> str:
        return f"backup run {self.pk} ({self.status})"


class BackupVolume(models.Model):
    """One tar volume in the backup target. Volumes are append-only: never rewritten, never deleted."""

    name = models.CharField(max_length=100, unique=True)
    sequence = models.PositiveIntegerField(unique=True)
    target = models.CharField(max_length=600, help_text="The target it was written to.")
    object_name = models.CharField(max_length=300, help_text="Its name in the target, e.g. volumes/<name>.tar.")
    manifest_name = models.CharField(max_length=300, help_text="Its manifest's separate copy in the target.")
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    manifest_sha256 = models.CharField(max_length=64)
    blob_count = models.PositiveIntegerField(default=0)
    bag_count = models.PositiveIntegerField(default=0)
    storage_class = models.CharField(max_length=40, blank=True, help_text="S3 storage class; empty for a directory.")
    locked_until = models.DateTimeField(null=True, blank=True, help_text="S3 object lock retention, if any.")
    run = models.ForeignKey(BackupRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="volumes")
    created = models.DateTimeField()

    class Meta:
        db_table = "repository_backupvolume"
        ordering = ["sequence"]
        constraints = [models.CheckConstraint(condition=Q(sequence__gte=1), name="backup_volume_sequence_positive")]

    def __str__(self) -> str:
        return self.name


class BackupCopy(models.Model):
    """Where a blob's bytes are in the backup tier: a member of one volume. A blob goes to tape once."""

    # PROTECT: a backed-up blob belongs to an accepted version, whose bytes are never deleted.
    blob = models.OneToOneField("repository.Blob", on_delete=models.PROTECT, related_name="backup_copy")
    volume = models.ForeignKey(BackupVolume, on_delete=models.PROTECT, related_name="copies")
    member = models.CharField(max_length=200, help_text="The tar member's name.")
    header_offset = models.BigIntegerField(help_text="Byte offset of the member's tar header in the volume.")
    data_offset = models.BigIntegerField(help_text="Byte offset of the member's contents in the volume.")
    verified_at = models.DateTimeField(null=True, blank=True, help_text="Last read back with a matching sha256.")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "repository_backupcopy"
        verbose_name_plural = "backup copies"
        constraints = [models.UniqueConstraint(fields=["volume", "member"], name="backup_member_unique")]

    def __str__(self) -> str:
        return f"{self.volume.name}:{self.member}"


class BackupBag(models.Model):
    """A BagIt bag of one accepted version's metadata in a volume. A new one is written whenever the metadata
    changes (a correction, a withdrawal, a DOI state); the latest one is what a restore uses."""

    version = models.ForeignKey("repository.Version", on_delete=models.CASCADE, related_name="backup_bags")
    volume = models.ForeignKey(BackupVolume, on_delete=models.PROTECT, related_name="bags")
    member = models.CharField(max_length=300, help_text="The bag's folder in the volume.")
    digest = models.CharField(max_length=64, help_text="sha256 of the exported metadata (nbarchive.json).")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "repository_backupbag"
        ordering = ["version", "-id"]
        indexes = [models.Index(fields=["version", "-id"], name="backup_bag_latest")]

    def __str__(self) -> str:
        return self.member


class FixityCheck(models.Model):
    """The latest fixity check of one blob: its primary object and its backup copy re-read and hashed.

    `None` means "not checked": no backup copy yet, or a cold backup volume that S3 is still restoring.
    """

    blob = models.OneToOneField("repository.Blob", on_delete=models.CASCADE, related_name="fixity")
    checked_at = models.DateTimeField()
    primary_ok = models.BooleanField(null=True)
    backup_ok = models.BooleanField(null=True)
    repaired = models.BooleanField(default=False, help_text="The primary object was rewritten from the backup.")
    detail = models.TextField(blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "repository_fixitycheck"
        indexes = [models.Index(fields=["checked_at"], name="fixity_checked_at")]

    def __str__(self) -> str:
        return f"fixity of blob {self.blob_id} at {self.checked_at:%Y-%m-%d %H:%M}"
