"""AuditEvent: who did what to which record, appended by every service that writes."""

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=64)
    record = models.ForeignKey("repository.Record", null=True, on_delete=models.CASCADE, related_name="events")
    version = models.ForeignKey("repository.Version", null=True, on_delete=models.CASCADE, related_name="events")
    data = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["record", "created"])]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_id} at {self.created:%Y-%m-%d %H:%M}"
