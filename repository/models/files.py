"""Blob (content-addressed bytes) and VersionFile (a path in a version pointing at a blob).

A new version that keeps a file points at the same blob, so its bytes are stored once.
"""

from django.db import models

from repository.validators import validate_file_path, validate_sha256


class Blob(models.Model):
    sha256 = models.CharField(max_length=64, unique=True, validators=[validate_sha256])
    md5 = models.CharField(max_length=32)
    size = models.BigIntegerField()
    storage_key = models.CharField(max_length=512, unique=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(size__gt=0), name="blob_not_empty")]

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
