"""ExecutionRun: one headless re-execution of a version's notebook, with its reproducibility report."""

import uuid

from django.conf import settings
from django.db import models
from django.urls import reverse


class Verdict(models.TextChoices):
    REPRODUCED = "reproduced", "Reproduced"
    REPRODUCED_WITH_DIFFERENCES = "reproduced_with_differences", "Reproduced with differences"
    NOT_REPRODUCED = "not_reproduced", "Not reproduced"
    EXECUTION_FAILED = "execution_failed", "Execution failed"
    TIMED_OUT = "timed_out", "Timed out"
    RESOURCE_LIMIT = "resource_limit", "Stopped by a resource limit"
    INVALID_NOTEBOOK = "invalid_notebook", "Invalid notebook"
    UNSUPPORTED_KERNEL = "unsupported_kernel", "Unsupported kernel"
    # The pinned image has no Python with ipykernel (RUNNER=image); the message names what is missing.
    UNSUPPORTED_IMAGE = "unsupported_image", "Unsupported image"


class ExecutionRun(models.Model):
    class Purpose(models.TextChoices):
        # Asked for while the version is a draft or in review (submission, re-run by its owners or moderators).
        SUBMISSION = "submission", "Submission"
        # A published version re-run in its image months later (services/reverification.py).
        REVERIFICATION = "reverification", "Re-verification"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        # The infrastructure failed (sandbox missing, storage down) after its retries: no verdict on the notebook.
        ERROR = "error", "Error"
        # Stopped on request (an owner or a moderator) before it had a verdict.
        CANCELLED = "cancelled", "Cancelled"

    run_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    version = models.ForeignKey("repository.Version", on_delete=models.CASCADE, related_name="runs")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    runner = models.CharField(max_length=20)
    purpose = models.CharField(max_length=16, choices=Purpose.choices, default=Purpose.SUBMISSION)
    container_image = models.CharField(max_length=600, blank=True, help_text="The image the version pins.")
    notebook_path = models.CharField(max_length=1024)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    verdict = models.CharField(max_length=32, choices=Verdict.choices, blank=True)
    message = models.TextField(blank=True)
    # For a run that ended `error`: the failure's code (e.g. image_not_found), so re-verification can tell an image
    # gone from its registry (news about the paper) from an operator's passing trouble (registry down).
    error_code = models.CharField(max_length=40, blank=True)
    environment = models.JSONField(default=dict, blank=True)
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    peak_memory_bytes = models.BigIntegerField(null=True, blank=True)
    logs = models.TextField(blank=True)
    executed_notebook = models.ForeignKey("repository.Blob", null=True, blank=True, on_delete=models.PROTECT,
                                          related_name="+")
    report = models.JSONField(default=dict, blank=True)
    staged_references = models.JSONField(default=list, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # The worker executing it holds `claim` and renews `heartbeat_at` (services/run_leases.py); a stale heartbeat
    # means that worker is gone and the run is taken over.
    claim = models.CharField(max_length=32, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Where a runner working elsewhere ran it (RUNNER=gitlab): "<project id>:<pipeline id>", and the GitLab pages.
    external_id = models.CharField(max_length=100, blank=True)
    external_url = models.URLField(max_length=500, blank=True, help_text="The GitLab pipeline.")
    external_job_url = models.URLField(max_length=500, blank=True, help_text="The GitLab job.")

    class Meta:
        ordering = ["-queued_at", "-id"]
        indexes = [models.Index(fields=["version", "queued_at"]), models.Index(fields=["status", "started_at"])]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(status="finished") | ~models.Q(verdict=""), name="finished_run_has_verdict"
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} of {self.version_id}: {self.status} {self.verdict}"

    def get_absolute_url(self) -> str:
        return reverse("repository:run_report", kwargs={"run_id": self.run_id})

    @property
    def is_active(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None
