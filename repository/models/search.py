"""The search index: one row per public version, written by repository/search/indexing.py.

The full-text part is not a Django field because it differs by database (migration
0015_search_index): on PostgreSQL two generated `tsvector` columns with GIN indexes (`search_vector`, weighted:
title A, creators and keywords B, description C, notebook text D; and `creators_vector` for `creator:`), on
SQLite an FTS5 table kept in step by triggers. repository/search/backends.py is the only code that names them.
"""

from django.db import models


class SearchDocument(models.Model):
    version = models.OneToOneField("repository.Version", on_delete=models.CASCADE, primary_key=True,
                                   related_name="search_document")
    record = models.ForeignKey("repository.Record", on_delete=models.CASCADE, related_name="+")
    number = models.PositiveIntegerField()
    # The newest public version of its record: what a search shows unless all versions are asked for.
    is_latest = models.BooleanField(default=False)

    title = models.TextField(blank=True)
    description = models.TextField(blank=True)
    creators_text = models.TextField(blank=True)
    keywords_text = models.TextField(blank=True)
    notebook_text = models.TextField(blank=True, help_text="Markdown and code cells of the verified notebook.")

    # What a hit shows without another query.
    creators = models.JSONField(default=list, blank=True)
    keywords = models.JSONField(default=list, blank=True)
    # Lower case: DOIs are case-insensitive.
    doi = models.CharField(max_length=255, blank=True)
    concept_doi = models.CharField(max_length=255, blank=True)

    # Facets with a single value per version.
    community = models.CharField(max_length=50, blank=True)
    resource_type = models.CharField(max_length=32, blank=True)
    verdict = models.CharField(max_length=32, blank=True)
    license = models.CharField(max_length=100, blank=True)
    publication_year = models.PositiveIntegerField(null=True)
    # The file access readers had when the document was written (repository.access.policy.effective_access); a
    # closed version is indexed by its metadata only (no notebook_text). The embargo lift rewrites the document.
    access = models.CharField(max_length=16, default="open")
    embargo_until = models.DateField(null=True)
    published_at = models.DateTimeField(null=True)
    # The record's unique views (its UsageCount with no version), kept here for the `mostviewed` sort: a column
    # on this row lets the sort read an index instead of joining the counts of every match. Written with the
    # document and refreshed by the usage aggregation for the records it counted (search_views_refresh).
    views = models.PositiveBigIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["record", "number"], name="searchdoc_record_number"),
            models.Index(fields=["is_latest", "published_at"], name="searchdoc_latest_published"),
            models.Index(fields=["is_latest", "views", "published_at"], name="searchdoc_latest_views"),
            models.Index(fields=["doi"], name="searchdoc_doi"),
            models.Index(fields=["concept_doi"], name="searchdoc_concept_doi"),
        ]

    def __str__(self) -> str:
        return f"search document of version {self.version_id}"


class SearchTerm(models.Model):
    """A value of a facet that a version can have many of (keywords, creators by name and by ORCID iD)."""

    class Field(models.TextChoices):
        KEYWORD = "keyword"
        CREATOR = "creator"
        ORCID = "orcid"

    document = models.ForeignKey(SearchDocument, on_delete=models.CASCADE, related_name="terms")
    field = models.CharField(max_length=10, choices=Field.choices)
    value = models.CharField(max_length=300, help_text="Lower case, what filters compare.")
    label = models.CharField(max_length=300, help_text="As entered, what a facet shows.")

    class Meta:
        indexes = [models.Index(fields=["field", "value", "document"], name="searchterm_field_value")]

    def __str__(self) -> str:
        return f"{self.field}={self.value}"


class SearchIndexState(models.Model):
    """One row: a counter bumped in the same transaction as every change to the search documents' facets or
    matches, so that counts cached under one generation are never read after a change (repository/search/
    engine.py). In the database rather than in the cache because a per-process cache would not see another
    process's bump."""

    generation = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"search index generation {self.generation}"
