"""What the caller hands to staging, as plain data: the files, the references and the fetch policy.

The caller (repository/services/runs.py) builds ``FileSpec`` and ``ReferenceSpec`` from database rows, so staging
knows nothing of models. ``FetchPolicy`` bounds every network fetch; ``policy_from_settings`` builds it from the
``STAGING_*`` settings. ``FetchPolicy(...)`` raises ``ValueError`` for an allowed network that is not a CIDR.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings


@dataclass(frozen=True)
class ReferenceSpec:
    """A data reference as plain data, built by the caller from a DataReference row."""

    label: str  # human name for messages, e.g. 'data reference 2 (https://example.org/a.csv)'
    kind: str  # "doi" | "url" | "repository_file" | "archive_query"
    identifier: str
    target_path: str
    sha256: str
    size: int
    query: dict | None = None
    blob_key: str | None = None  # repository_file: the storage key of our own blob
    # Why the caller refuses it although its bytes may exist (a repository file whose version was withdrawn):
    # staging fails with this message before looking at the cache or the source.
    refused: str | None = None
    # The verify_notebook command's local file (given with --data) that stands in for the source: read instead of
    # fetching, never served from the cache. Set by that command only, never from a database row.
    local_path: Path | None = None


@dataclass(frozen=True)
class FileSpec:
    path: str
    blob_key: str
    sha256: str


@dataclass(frozen=True)
class FetchPolicy:
    max_bytes: int = 5 * 1024**3
    timeout_seconds: float = 60.0  # per connection attempt and per read
    total_seconds: float = 1800.0  # whole transfer of one reference, redirects included
    max_redirects: int = 5
    # CIDRs allowed even though private/loopback: ONLY for tests and on-premise archives.
    allowed_networks: tuple[str, ...] = ()
    ca_bundle: str | None = None  # extra CA file to trust besides the system's (tests use a local CA)
    doi_resolver: str = "https://doi.org/"
    parsed_networks: tuple = field(init=False, repr=False, compare=False)  # allowed_networks, parsed

    def __post_init__(self):
        # Parsed once, and a typo in the configuration fails at once rather than at the first fetch.
        networks = tuple(ipaddress.ip_network(cidr, strict=False) for cidr in self.allowed_networks)
        object.__setattr__(self, "parsed_networks", networks)


def policy_from_settings() -> FetchPolicy:
    """The FetchPolicy configured in settings (STAGING_*), with the dataclass defaults for what is unset."""
    defaults = FetchPolicy()
    return FetchPolicy(
        max_bytes=getattr(settings, "STAGING_MAX_BYTES", defaults.max_bytes),
        timeout_seconds=getattr(settings, "STAGING_TIMEOUT_SECONDS", defaults.timeout_seconds),
        total_seconds=getattr(settings, "STAGING_TOTAL_SECONDS", defaults.total_seconds),
        max_redirects=getattr(settings, "STAGING_MAX_REDIRECTS", defaults.max_redirects),
        allowed_networks=tuple(getattr(settings, "STAGING_ALLOWED_NETWORKS", defaults.allowed_networks)),
        ca_bundle=getattr(settings, "STAGING_CA_BUNDLE", None) or None,
        doi_resolver=getattr(settings, "STAGING_DOI_RESOLVER", defaults.doi_resolver),
    )
