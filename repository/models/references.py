"""DataReference: something the notebook reads, with the checksum it must match when staged for a run."""

from django.db import models

from repository.validators import validate_file_path, validate_sha256


class DataReference(models.Model):
    class Kind(models.TextChoices):
        DOI = "doi", "DOI"
        URL = "url", "HTTPS URL"
        REPOSITORY_FILE = "repository_file", "File of this repository"
        ARCHIVE_QUERY = "archive_query", "Query against an archive API"

    version = models.ForeignKey("repository.Version", on_delete=models.CASCADE, related_name="data_references")
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # doi: the DOI; url: the https URL; repository_file: "<record id>/<path>" or "<record id>/v<n>/<path>";
    # archive_query: the https URL of the API endpoint the query is sent to.
    identifier = models.CharField(max_length=2000)
    query = models.JSONField(null=True, blank=True, help_text="archive_query only: the query document sent.")
    target_path = models.CharField(
        max_length=1024, validators=[validate_file_path], help_text="Where the notebook reads it, relative."
    )
    sha256 = models.CharField(max_length=64, validators=[validate_sha256])
    size = models.BigIntegerField()
    title = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["version", "position"]
        constraints = [
            models.UniqueConstraint(fields=["version", "position"], name="reference_position_unique"),
            models.UniqueConstraint(fields=["version", "target_path"], name="reference_target_unique"),
            models.CheckConstraint(condition=models.Q(size__gte=0), name="reference_size_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.identifier}"
