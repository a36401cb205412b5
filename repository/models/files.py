"""Blob (content-addressed bytes) and VersionFile (a path in a version pointing at a blob).

A new version that keeps a file points at the same blob, so its bytes are stored once. A blob's bytes live at
`storage_key`: `blobs/sha256/<ab>/<cd>/<sha256>` for blobs made since content addressing, `blobs/<ab>/<cd>/<uuid>`
for older ones (kept as they are), and `uploads/tmp/<uuid>` for a moment after an upload, until `blob_promote`
moves them (repository/storage.py explains).
"""

from django.db import models

from repository.validators import validate_file_path, validate_sha256


class Blob(models.Model):
    sha256 = models.CharField(max_length=64, unique=True, validators=[validate_sha256])
    md5 = models.CharField(max_length=32)
    size = models.BigIntegerField()
    storage_key = models.CharField(max_length=512, unique=True)
    created = models.DateTimeField(auto_now_add=True)
    # Set by the garbage collector (services/blobs.py) when no file and no run uses the blob, cleared when one
    # does again; the bytes are deleted once it has been set for longer than BLOB_GC_GRACE_HOURS.
    unreferenced_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(size__gt=0), name="blob_not_empty")]
        indexes = [models.Index(fields=["unreferenced_since"], condition=models.Q(unreferenced_since__isnull=False),
                                name="blob_unreferenced_since")]

    def __str__(self) -> str:
        return f"sha256:{self.sha256[:12]}… ({self.size} bytes)"


class VersionFile(models.Model):
    version = models.ForeignKey("repository.Version", on_delete=models.CASCADE, related_name="files")
    path = models.CharField(max_length=1024, validators=[validate_file_path])
    # PROTECT: a blob a version still lists can never be deleted from under it.
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="version_files")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["version", "path"]
        constraints = [models.UniqueConstraint(fields=["version", "path"], name="file_path_unique_per_version")]

    def __str__(self) -> str:
        return self.path

    @property
    def is_notebook(self) -> bool:
        return self.path.lower().endswith(".ipynb")
