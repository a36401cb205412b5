"""Who has been let in to a record's closed files: grants (from an accepted request, or given directly), the
requests that ask for them, and secret share links. All hang on the record: a grant covers its restricted
versions, as in InvenioRDM."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class AccessRequest(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        DECLINED = "declined", "Declined"

    record = models.ForeignKey("repository.Record", on_delete=models.CASCADE, related_name="access_requests")
    number = models.PositiveIntegerField(help_text="Numbered per record: /access/requests/{number}.")
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    message = models.TextField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    until = models.DateField(null=True, blank=True, help_text="Accepted until this day (inclusive); none: no end.")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["record", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["record", "number"], name="access_request_number_unique"),
            # One open question per reader and record: asking again while pending adds nothing.
            models.UniqueConstraint(fields=["record", "requester"], condition=models.Q(state="pending"),
                                    name="one_pending_access_request"),
        ]

    def __str__(self) -> str:
        return f"{self.record.public_id} access request {self.number} ({self.state})"


class AccessGrant(models.Model):
    record = models.ForeignKey("repository.Record", on_delete=models.CASCADE, related_name="access_grants")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="access_grants")
    until = models.DateField(null=True, blank=True, help_text="Last day of access (inclusive); none: no end.")
    granted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    request = models.ForeignKey(AccessRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["record", "-created"]
        constraints = [
            models.UniqueConstraint(fields=["record", "user"], condition=models.Q(revoked_at__isnull=True),
                                    name="one_live_access_grant"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} may read {self.record.public_id}"


class ShareLink(models.Model):
    """A secret link to a record's restricted versions and its draft (for a paper's reviewers). Only the token's
    SHA-256 is kept: the link is shown once, when it is made, like an API token."""

    record = models.ForeignKey("repository.Record", on_delete=models.CASCADE, related_name="share_links")
    token_sha256 = models.CharField(max_length=64, unique=True)
    label = models.CharField(max_length=200, blank=True, help_text="Whom it was made for, e.g. 'Referee 2'.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    uses = models.PositiveIntegerField(default=0)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["record", "-created"]

    def __str__(self) -> str:
        return f"share link {self.pk} of {self.record.public_id}"

    @property
    def state(self) -> str:
        """live, expired or revoked (what the owners' list shows)."""
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at is not None and self.expires_at <= timezone.now() else "live"
