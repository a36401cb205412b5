"""Upload: one direct, resumable upload of a draft's file, in parts (repository/services/uploads.py).

The client declares the file's path, size and SHA-256 first; its parts go straight to the object store (S3:
presigned UploadPart URLs of a multipart upload) or to the application (a local directory). Once completed, the
file is `checking` until a task has read the object back and found the declared SHA-256; only then does the
draft get its VersionFile. At most one upload per path is under way at a time.
"""

import uuid

from django.conf import settings
from django.db import models

from repository.validators import validate_file_path, validate_sha256


class Upload(models.Model):
    class State(models.TextChoices):
        UPLOADING = "uploading", "Uploading"
        CHECKING = "checking", "Checking"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    ACTIVE_STATES = (State.UPLOADING, State.CHECKING)

    upload_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    version = models.ForeignKey("repository.Version", on_delete=models.CASCADE, related_name="uploads")
    path = models.CharField(max_length=1024, validators=[validate_file_path])
    size = models.BigIntegerField()
    # Declared by the client before the first byte; the file is accepted only if the stored bytes hash to it.
    sha256 = models.CharField(max_length=64, validators=[validate_sha256])
    # Computed when the object is read back.
    md5 = models.CharField(max_length=32, blank=True)
    part_size = models.BigIntegerField()
    # Where the parts are assembled (uploads/direct/<upload_id>); S3's UploadId of the multipart upload, empty for
    # a local directory.
    storage_key = models.CharField(max_length=512, unique=True)
    multipart_id = models.CharField(max_length=1024, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.UPLOADING)
    # Why it failed, naming the file: what the user reads.
    message = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                                   related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["version", "path", "created"]
        constraints = [
            # Two clients uploading the same path: the second is refused (409) rather than racing the first.
            models.UniqueConstraint(fields=["version", "path"], condition=models.Q(state__in=["uploading", "checking"]),
                                    name="upload_one_active_per_path"),
            models.CheckConstraint(condition=models.Q(size__gt=0) & models.Q(part_size__gt=0),
                                   name="upload_sizes_positive"),
        ]
        indexes = [models.Index(fields=["expires_at"], name="upload_expires_at")]

    def __str__(self) -> str:
        return f"{self.path} ({self.state})"

    @property
    def part_count(self) -> int:
        return -(-self.size // self.part_size)

    def part_length(self, number: int) -> int:
        """Bytes in part `number` (1-based): part_size, except the last."""
        return min(self.part_size, self.size - (number - 1) * self.part_size)
