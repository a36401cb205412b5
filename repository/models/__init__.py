"""Tables of the core app, split by aggregate. Data and constraints only: the rules live in services."""

from .audit import AuditEvent
from .dois import DoiOutbox, DoiState, LocalDoi
from .files import Blob, VersionFile
from .records import Creator, FileAccess, Record, RelatedIdentifier, ResourceType, Version
from .references import DataReference
from .runs import ExecutionRun, Verdict
from .search import SearchDocument, SearchIndexState, SearchTerm
from .tokens import AccessToken
from .uploads import Upload
from .usage import UsageCount, UsageEvent

__all__ = [
    "AccessToken",
    "AuditEvent",
    "Blob",
    "Creator",
    "DataReference",
    "DoiOutbox",
    "DoiState",
    "LocalDoi",
    "ExecutionRun",
    "FileAccess",
    "Record",
    "RelatedIdentifier",
    "ResourceType",
    "SearchDocument",
    "SearchIndexState",
    "SearchTerm",
    "Upload",
    "UsageCount",
    "UsageEvent",
    "Verdict",
    "Version",
    "VersionFile",
]
