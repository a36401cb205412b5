"""Metadata harvested from other OAI-PMH repositories (harvest/harvester), so that a data reference to a DOI can
show the title and creators of the dataset it points to.

`HarvestSource` is one remote endpoint with the selection we harvest from it (set, metadata format) and how far
we got; `HarvestedRecord` is one remote item, keyed by its OAI identifier within the source and upserted on every
harvest. An item the source reports as deleted keeps its row (and its last known metadata) with `deleted` set.
Rows are written only by harvest.harvester.services.
"""

from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower


class MetadataPrefix(models.TextChoices):
    OAI_DC = "oai_dc", "Dublin Core (oai_dc)"
    OAI_DATACITE = "oai_datacite", "DataCite (oai_datacite)"


class HarvestSource(models.Model):
    class Granularity(models.TextChoices):
        DAY = "YYYY-MM-DD", "Days"
        SECOND = "YYYY-MM-DDThh:mm:ssZ", "Seconds"

    base_url = models.URLField(max_length=500, unique=True, help_text="The OAI-PMH base URL, without arguments.")
    set_spec = models.CharField(max_length=200, blank=True, help_text="Harvest only this set; empty: everything.")
    metadata_prefix = models.CharField(max_length=20, choices=MetadataPrefix.choices, default=MetadataPrefix.OAI_DC)
    repository_name = models.CharField(max_length=300, blank=True, help_text="As the source's Identify states it.")
    granularity = models.CharField(max_length=20, choices=Granularity.choices, default=Granularity.SECOND,
                                   help_text="The finest `from` the source understands (from its Identify).")
    harvested_until = models.DateTimeField(
        null=True, blank=True,
        help_text="The latest datestamp of a complete harvest; the next harvest asks for records from it on.")
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_run_outcome = models.TextField(blank=True, help_text="One line: the counts, or why the last harvest failed.")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["base_url"]

    def __str__(self) -> str:
        selection = f" [{self.set_spec}]" if self.set_spec else ""
        return f"{self.repository_name or self.base_url}{selection}"


class HarvestedRecord(models.Model):
    source = models.ForeignKey(HarvestSource, on_delete=models.CASCADE, related_name="records")
    oai_identifier = models.CharField(max_length=500)
    datestamp = models.DateTimeField(help_text="The source's datestamp of the item (UTC).")
    deleted = models.BooleanField(default=False, help_text="The source reports the item as deleted.")
    set_specs = models.JSONField(default=list, blank=True)
    doi = models.CharField(max_length=300, blank=True, db_index=True,
                           help_text="Lower case, without resolver prefix: DOI names are case-insensitive.")
    identifiers = models.JSONField(default=list, blank=True, help_text="Other identifiers (URLs, handles, ...).")
    title = models.TextField(blank=True)
    creators = models.JSONField(default=list, blank=True, help_text="Names, in the source's order.")
    publication_year = models.PositiveSmallIntegerField(null=True, blank=True)
    resource_type = models.CharField(max_length=200, blank=True)
    metadata_prefix = models.CharField(max_length=20, choices=MetadataPrefix.choices)
    raw_metadata = models.TextField(blank=True, help_text="The <metadata> content as received (XML).")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "oai_identifier"], name="harvested_record_unique_per_source"),
            models.CheckConstraint(condition=Q(doi=Lower("doi")), name="harvested_record_doi_lower_case"),
        ]

    def __str__(self) -> str:
        return self.title or self.oai_identifier

    @property
    def url(self) -> str:
        """Where a reader can see the item: its DOI resolved, else its first web identifier ('' if none)."""
        if self.doi:
            return f"https://doi.org/{self.doi}"
        return next((i for i in self.identifiers if i.startswith(("https://", "http://"))), "")


class OaiFragment(models.Model):
    """What this repository's OAI-PMH provider says of one of its versions, serialised once: the `<metadata>`
    payload in each format, so that a page of ListRecords is a keyset read of text and a concatenation.

    Written by harvest/provider/fragments.py when a version is published, corrected or withdrawn (in the same
    transaction), by `manage.py oai_fragments_rebuild`, and on the fly for a row that is missing. A row is used
    only while `datestamp` equals the version's `public_changed_at`, which moves whenever what harvesters see
    changes: a row written before a change is never served after it. Headers are not stored: their columns are
    read with the page, and the sets with it too.
    """

    version = models.OneToOneField("repository.Version", on_delete=models.CASCADE, primary_key=True,
                                   related_name="oai_fragment")
    datestamp = models.DateTimeField(help_text="The version's public_changed_at these fragments describe.")
    oai_dc = models.TextField(blank=True, help_text="Empty for a withdrawn version (it has no metadata).")
    oai_datacite = models.TextField(blank=True, help_text="Empty without a DOI, or withdrawn.")

    def __str__(self) -> str:
        return f"OAI fragments of version {self.version_id}"
