"""Record (the concept: all versions of one work) and Version (one version with its metadata)."""

import secrets

from django.conf import settings
from django.db import models
from django.urls import reverse

from repository.validators import (
    validate_container_image,
    validate_doi,
    validate_orcid,
    validate_ror,
    validate_spdx_license,
)

# Crockford base32 without look-alikes, as InvenioRDM's record ids ("abcde-12345").
_ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def new_public_id() -> str:
    chars = "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))
    return f"{chars[:5]}-{chars[5:]}"


class Record(models.Model):
    public_id = models.CharField(max_length=11, unique=True, default=new_public_id, editable=False)
    owners = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="records")
    concept_doi = models.CharField(max_length=255, blank=True, help_text="Resolves to the latest published version.")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.public_id

    def get_absolute_url(self) -> str:
        return reverse("repository:draft_detail", kwargs={"record_id": self.public_id})


class ResourceType(models.TextChoices):
    NOTEBOOK = "ComputationalNotebook", "Computational notebook"
    DATASET = "Dataset", "Dataset"


class FileAccess(models.TextChoices):
    """Who may read a version's files. Its metadata, landing page, DOI and citation are public in every case."""

    OPEN = "open", "Open"
    EMBARGOED = "embargoed", "Embargoed"
    RESTRICTED = "restricted", "Restricted"


class Version(models.Model):
    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        IN_REVIEW = "in_review", "In review"
        PUBLISHING = "publishing", "Publishing"
        PUBLISHED = "published", "Published"
        WITHDRAWN = "withdrawn", "Withdrawn"

    record = models.ForeignKey(Record, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.DRAFT)
    doi = models.CharField(max_length=255, blank=True, validators=[validate_doi])
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    # Citation metadata, shaped after DataCite 4.5 (creators and related identifiers are rows of their own).
    title = models.CharField(max_length=500, blank=True)
    description = models.TextField(blank=True)
    resource_type = models.CharField(max_length=32, choices=ResourceType.choices, default=ResourceType.NOTEBOOK)
    version_label = models.CharField(max_length=50, blank=True, help_text="The author's own name for it, e.g. v1.2.")
    license = models.CharField(max_length=100, blank=True, validators=[validate_spdx_license])
    keywords = models.JSONField(default=list, blank=True)
    funding = models.JSONField(default=list, blank=True, help_text="Funder name, identifier and award number.")

    # How to re-run it.
    container_image = models.CharField(max_length=600, blank=True, validators=[validate_container_image])
    notebook_path = models.CharField(max_length=1024, blank=True, help_text="The notebook that is re-executed.")
    comparison_tolerance = models.JSONField(
        default=dict, blank=True, help_text="Overrides of the default comparison tolerance, e.g. {\"rtol\": 1e-6}."
    )

    # Access to the files (repository.access.policy decides who reads them; the embargo lift job opens them).
    access_files = models.CharField(max_length=16, choices=FileAccess.choices, default=FileAccess.OPEN)
    embargo_until = models.DateField(null=True, blank=True, help_text="The day an embargoed version's files open.")
    embargo_reason = models.TextField(blank=True)

    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    # When what harvesters see last changed (accepted, corrected, withdrawn): the OAI-PMH datestamp.
    public_changed_at = models.DateTimeField(null=True, blank=True)
    withdrawal_reason = models.TextField(blank=True, help_text="Shown on the tombstone page.")

    class Meta:
        ordering = ["record", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["record", "number"], name="version_number_unique_per_record"),
            # A record has at most one unpublished version at a time (Zenodo's rule): the draft, which may be
            # in review or being published.
            models.UniqueConstraint(
                fields=["record"], condition=models.Q(state__in=["draft", "in_review", "publishing"]),
                name="one_draft_per_record",
            ),
            models.CheckConstraint(condition=models.Q(number__gte=1), name="version_number_positive"),
            # An embargo without an end date would never lift.
            models.CheckConstraint(
                condition=~models.Q(access_files="embargoed") | models.Q(embargo_until__isnull=False),
                name="embargo_has_end_date",
            ),
        ]
        indexes = [
            # OAI-PMH pages by keyset over (datestamp, id); only accepted versions have a datestamp.
            models.Index(fields=["public_changed_at", "id"], name="version_public_changed",
                         condition=models.Q(public_changed_at__isnull=False)),
            # The embargo lift job looks for embargoes that have ended.
            models.Index(fields=["embargo_until"], name="version_embargo_until",
                         condition=models.Q(access_files="embargoed")),
        ]

    def __str__(self) -> str:
        return f"{self.record.public_id} v{self.number}"

    def get_absolute_url(self) -> str:
        return reverse("repository:draft_detail", kwargs={"record_id": self.record.public_id})

    UNPUBLISHED_STATES = ("draft", "in_review", "publishing")
    # Accepted by a moderator: its DOI is (being) registered and it is part of the record's public history.
    ACCEPTED_STATES = ("publishing", "published", "withdrawn")

    @property
    def is_editable(self) -> bool:
        return self.state == self.State.DRAFT

    @property
    def latest_run(self):
        return self.runs.order_by("-queued_at", "-id").first()


class Creator(models.Model):
    version = models.ForeignKey(Version, on_delete=models.CASCADE, related_name="creators")
    position = models.PositiveIntegerField()
    name = models.CharField(max_length=300, help_text="Family, Given; or an organisation's name.")
    given_name = models.CharField(max_length=200, blank=True)
    family_name = models.CharField(max_length=200, blank=True)
    orcid = models.CharField(max_length=40, blank=True, validators=[validate_orcid])
    affiliation = models.CharField(max_length=300, blank=True)
    affiliation_ror = models.CharField(max_length=40, blank=True, validators=[validate_ror])

    class Meta:
        ordering = ["version", "position"]
        constraints = [models.UniqueConstraint(fields=["version", "position"], name="creator_position_unique")]

    def __str__(self) -> str:
        return self.name


class RelatedIdentifier(models.Model):
    """A link to something else: the paper the notebook supports, software it uses, a dataset it derives from."""

    class Scheme(models.TextChoices):
        DOI = "DOI", "DOI"
        URL = "URL", "URL"
        ARXIV = "arXiv", "arXiv"
        HANDLE = "Handle", "Handle"

    class Relation(models.TextChoices):
        IS_SUPPLEMENT_TO = "IsSupplementTo"
        IS_CITED_BY = "IsCitedBy"
        CITES = "Cites"
        REFERENCES = "References"
        IS_REFERENCED_BY = "IsReferencedBy"
        IS_DERIVED_FROM = "IsDerivedFrom"
        IS_SOURCE_OF = "IsSourceOf"
        REQUIRES = "Requires"
        IS_DOCUMENTED_BY = "IsDocumentedBy"
        DOCUMENTS = "Documents"
        IS_PART_OF = "IsPartOf"
        HAS_PART = "HasPart"
        IS_DESCRIBED_BY = "IsDescribedBy"
        DESCRIBES = "Describes"
        COMPILES = "Compiles"
        IS_COMPILED_BY = "IsCompiledBy"

    version = models.ForeignKey(Version, on_delete=models.CASCADE, related_name="related_identifiers")
    position = models.PositiveIntegerField()
    identifier = models.CharField(max_length=1000)
    scheme = models.CharField(max_length=10, choices=Scheme.choices)
    relation = models.CharField(max_length=32, choices=Relation.choices)

    class Meta:
        ordering = ["version", "position"]
        constraints = [models.UniqueConstraint(fields=["version", "position"], name="related_position_unique")]

    def __str__(self) -> str:
        return f"{self.relation} {self.identifier}"
