"""Usage counts, COUNTER-style: the raw events a request writes, and the counts a task makes of them."""

from django.db import models


class UsageEvent(models.Model):
    """One view of a landing page or one download, as it happened: written by the request with a single INSERT
    (repository.services.usage.usage_record), turned into counts by `usage_aggregate`, and deleted a while after,
    once the 30-second and per-hour rules no longer need it."""

    class Kind(models.TextChoices):
        VIEW = "view", "View"
        DOWNLOAD = "download", "Download"

    record = models.ForeignKey("repository.Record", on_delete=models.CASCADE, related_name="+", db_index=False)
    version = models.ForeignKey("repository.Version", on_delete=models.CASCADE, related_name="+", db_index=False)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    # What was asked for within the version (a file's path, "zip" for Download all, "" for the page): a double
    # click is the same visitor asking for the same thing again within 30 seconds.
    target = models.CharField(max_length=255, blank=True)
    # A keyed hash of the session, the user or the address and browser of the day: never the address itself.
    visitor = models.CharField(max_length=64)
    occurred_at = models.DateTimeField()
    processed = models.BooleanField(default=False)

    class Meta:
        indexes = [models.Index(fields=["processed", "occurred_at"], name="usage_event_pending")]


class UsageCount(models.Model):
    """The counts of one version (`version` set) or of a whole record over all its versions (`version` null).

    `views`/`downloads` are COUNTER's Total_Item_Investigations/Requests after the double-click filter;
    `unique_*` count one per visitor and hour (Unique_Item_*), for the record across its versions."""

    record = models.ForeignKey("repository.Record", on_delete=models.CASCADE, related_name="usage_counts")
    version = models.OneToOneField("repository.Version", on_delete=models.CASCADE, null=True, blank=True,
                                   related_name="usage_count")
    views = models.PositiveBigIntegerField(default=0)
    unique_views = models.PositiveBigIntegerField(default=0)
    downloads = models.PositiveBigIntegerField(default=0)
    unique_downloads = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["record"], condition=models.Q(version__isnull=True),
                                    name="usage_count_one_per_record"),
        ]

    def as_dict(self) -> dict:
        return {"views": self.views, "unique_views": self.unique_views, "downloads": self.downloads,
                "unique_downloads": self.unique_downloads}
