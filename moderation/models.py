"""Communities, review requests and their timelines.

A ReviewRequest is opened when a version is submitted and follows the state machine of moderation/workflow.py;
every change and comment is a ReviewEvent, so the timeline is the audit trail.
"""

from django.conf import settings
from django.db import models
from django.urls import reverse


class Community(models.Model):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    curation_policy = models.TextField(blank=True, help_text="What the community accepts and how it reviews; "
                                       "shown on its public page.")
    moderators = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="moderated_communities")
    review_corrections = models.BooleanField(
        default=False, help_text="Owners' corrections of the published metadata of versions accepted here wait for "
        "a moderator's approval (otherwise they apply at once and the moderators are told).")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "communities"

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("communities:detail", kwargs={"slug": self.slug})


class ReviewRequest(models.Model):
    class State(models.TextChoices):
        SUBMITTED = "submitted", "Submitted"
        CHANGES_REQUESTED = "changes_requested", "Changes requested"
        RESUBMITTED = "resubmitted", "Resubmitted"
        ACCEPTED = "accepted", "Accepted"
        DECLINED = "declined", "Declined"
        CANCELLED = "cancelled", "Cancelled"

    OPEN_STATES = ("submitted", "changes_requested", "resubmitted")

    version = models.ForeignKey("repository.Version", on_delete=models.CASCADE, related_name="review_requests")
    community = models.ForeignKey(Community, on_delete=models.PROTECT, related_name="review_requests")
    submitted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=20, choices=State.choices, default=State.SUBMITTED)
    checklist = models.JSONField(default=dict, blank=True, help_text="The moderator's checklist, item -> bool.")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["version"], condition=models.Q(state__in=["submitted", "changes_requested",
                                                                                      "resubmitted"]),
                                    name="one_open_review_per_version"),
        ]
        indexes = [models.Index(fields=["community", "state", "created"])]

    def __str__(self) -> str:
        return f"review {self.pk} of {self.version}: {self.state}"

    def get_absolute_url(self) -> str:
        return reverse("moderation:request_detail", kwargs={"request_id": self.pk})

    @property
    def is_open(self) -> bool:
        return self.state in self.OPEN_STATES


class ReviewEvent(models.Model):
    class Kind(models.TextChoices):
        STATE_CHANGE = "state_change", "State change"
        COMMENT = "comment", "Comment"
        VERIFICATION = "verification", "Verification result"

    request = models.ForeignKey(ReviewRequest, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    from_state = models.CharField(max_length=20, blank=True)
    to_state = models.CharField(max_length=20, blank=True)
    comment = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created", "id"]

    def __str__(self) -> str:
        return f"{self.kind} on review {self.request_id} at {self.created:%Y-%m-%d %H:%M}"


class CorrectionRequest(models.Model):
    """An owner's correction of a published version's metadata, held for the moderators of a community that
    reviews corrections (Community.review_corrections). Approving applies it through the core's service."""

    class State(models.TextChoices):
        PENDING = "pending", "Waiting for a moderator"
        APPLIED = "applied", "Approved and applied"
        DECLINED = "declined", "Declined"
        SUPERSEDED = "superseded", "Replaced by a later correction"

    review = models.ForeignKey(ReviewRequest, on_delete=models.CASCADE, related_name="corrections",
                               help_text="The accepted review of the version: its community decides.")
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    metadata = models.JSONField(help_text="The whole metadata as proposed (validated when proposed and again "
                                          "when applied).")
    fields = models.JSONField(default=list, help_text="The fields the correction changes.")
    reason = models.TextField(blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    decision_comment = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [models.UniqueConstraint(fields=["review"], condition=models.Q(state="pending"),
                                               name="one_pending_correction_per_review")]

    def __str__(self) -> str:
        return f"correction {self.pk} of {self.review.version_id}: {self.state}"
