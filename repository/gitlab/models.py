"""GitLab links of records: where new versions come from (tags of a linked project), and each import of a ref.

The tables keep the names they had when these models belonged to the repository app (`db_table`): the move to
this app changed no row (migrations/0001_initial.py).
"""

from django.conf import settings
from django.db import models


class GitLabLink(models.Model):
    """A record's GitLab project: a tag pushed there (webhook) or an import request makes a new version draft."""

    record = models.OneToOneField("repository.Record", on_delete=models.CASCADE, related_name="gitlab_link")
    project_id = models.BigIntegerField(unique=True, help_text="GitLab's numeric id: stays when the project moves.")
    project_path = models.CharField(max_length=255, help_text="namespace/project when it was linked.")
    web_url = models.URLField(max_length=500, blank=True)
    # sha256 of the webhook secret (X-Gitlab-Token); the secret itself is shown once, when the link is made.
    webhook_secret_hash = models.CharField(max_length=64)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "repository_gitlablink"

    def __str__(self) -> str:
        return f"{self.record_id} <- {self.project_path}"


class GitLabImport(models.Model):
    """One ref of a linked project imported as a version draft; one row per (record, project, ref) makes imports
    idempotent: the same tag pushed twice is one import and one draft."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class Source(models.TextChoices):
        WEBHOOK = "webhook", "Tag push webhook"
        API = "api", "Import request"

    record = models.ForeignKey("repository.Record", on_delete=models.CASCADE, related_name="gitlab_imports")
    project_id = models.BigIntegerField()
    ref = models.CharField(max_length=255, help_text="The tag (or branch, or commit) that was asked for.")
    sha = models.CharField(max_length=64, blank=True, help_text="The commit the ref named when imported.")
    version = models.ForeignKey("repository.Version", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="gitlab_imports")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    source = models.CharField(max_length=10, choices=Source.choices)
    message = models.TextField(blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "repository_gitlabimport"
        ordering = ["-created", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["record", "project_id", "ref"], name="gitlab_import_once_per_ref"),
        ]

    def __str__(self) -> str:
        return f"{self.record_id} {self.ref}: {self.status}"
