"""The DOI outbox: one row per DOI name we ever minted, holding the state we want it to have at the registrar.

Services change the wanted state in the same transaction as the change that needs it (a draft created, a
version accepted, a version withdrawn) and bump `generation`; the sync task brings the registrar up to date and
records the generation it sent. A row is pending while `synced_generation < generation`. Rows are never
deleted: a discarded draft's DOI stays here as `deleted`, so its name is never minted again.
"""

from django.db import models
from django.db.models import F, Q


class DoiState(models.TextChoices):
    DRAFT = "draft", "Draft (reserved, not resolvable)"
    REGISTERED = "registered", "Registered (resolves, hidden from search)"
    FINDABLE = "findable", "Findable (resolves, indexed)"
    DELETED = "deleted", "Deleted (a discarded draft)"


class DoiOutbox(models.Model):
    class Kind(models.TextChoices):
        VERSION = "version", "Version DOI"
        CONCEPT = "concept", "Concept DOI"

    doi = models.CharField(max_length=255, unique=True, help_text="Lower case: DOI names are case-insensitive.")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # Null once a discarded draft took its record or version with it; the name stays taken.
    record = models.ForeignKey("repository.Record", on_delete=models.SET_NULL, null=True, blank=True,
                               related_name="dois")
    # Null for the concept DOI, and for a version DOI whose draft was discarded (the version row is gone).
    version = models.OneToOneField("repository.Version", on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="doi_outbox")

    wanted_state = models.CharField(max_length=12, choices=DoiState.choices, default=DoiState.DRAFT)
    generation = models.PositiveIntegerField(default=1,
                                             help_text="Bumped whenever the wanted state or metadata change.")
    synced_generation = models.PositiveIntegerField(default=0)
    registrar_state = models.CharField(max_length=12, blank=True, help_text="What the registrar last told us.")

    # A sync claims the row for a while instead of holding a database lock across the HTTP call, so that the
    # transactions bumping `generation` never wait on the registrar.
    claimed_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Failed attempts since the last success.")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    needs_attention = models.BooleanField(
        default=False, help_text="The registrar refused the request (not a passing failure): an admin must look.")
    synced_at = models.DateTimeField(null=True, blank=True)
    # When the registrar first fell behind what we want (null: in sync); DOIs behind for longer than
    # DOI_PENDING_ALERT_MINUTES are overdue, and the admins are told once (overdue_alerted_at).
    pending_since = models.DateTimeField(null=True, blank=True)
    overdue_alerted_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created"]
        verbose_name = "DOI"
        constraints = [
            models.UniqueConstraint(fields=["record"], condition=Q(kind="concept"), name="one_concept_doi_per_record"),
            models.CheckConstraint(condition=Q(synced_generation__lte=F("generation")), name="synced_not_ahead"),
        ]
        indexes = [models.Index(fields=["next_attempt_at"], condition=Q(synced_generation__lt=F("generation")),
                                name="doi_outbox_pending")]

    def __str__(self) -> str:
        return self.doi

    @property
    def is_pending(self) -> bool:
        return self.synced_generation < self.generation


class LocalDoi(models.Model):
    """The embedded registrar (DOI_PROVIDER=local): what DataCite would hold, kept in our own database.

    `/doi/<doi>` resolves registered and findable names to their URL, as https://doi.org does for real ones.
    """

    doi = models.CharField(max_length=255, unique=True)
    state = models.CharField(max_length=12, choices=DoiState.choices)
    url = models.URLField(max_length=2000, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "local DOI"

    def __str__(self) -> str:
        return self.doi
