"""Appending audit events. Every service that writes calls this inside its transaction."""

from repository.models import AuditEvent, Record, Version


def audit_event_append(*, actor, action: str, record: Record | None = None, version: Version | None = None,
                       data: dict | None = None) -> AuditEvent:
    if record is None and version is not None:
        record = version.record
    return AuditEvent.objects.create(
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        action=action,
        record=record,
        version=version,
        data=data or {},
    )
