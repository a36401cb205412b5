"""Tables of the core app, split by aggregate. Data and constraints only: the rules live in services."""

from .audit import AuditEvent
from .backup import BackupBag, BackupCopy, BackupRun, BackupVolume, FixityCheck
from .dois import DoiOutbox, DoiState, LocalDoi
from .files import Blob, VersionFile
from .gitlab import GitLabImport, GitLabLink
from .records import Creator, Record, RelatedIdentifier, ResourceType, Version
from .references import DataReference
from .runs import ExecutionRun, Verdict
from .tokens import AccessToken

__all__ = [
    "AccessToken",
    "AuditEvent",
    "BackupBag",
    "BackupCopy",
    "BackupRun",
    "BackupVolume",
    "Blob",
    "Creator",
    "DataReference",
    "DoiOutbox",
    "DoiState",
    "LocalDoi",
    "ExecutionRun",
    "GitLabImport",
    "GitLabLink",
    "FixityCheck",
    "Record",
    "RelatedIdentifier",
    "ResourceType",
    "Verdict",
    "Version",
    "VersionFile",
]
