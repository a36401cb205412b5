"""The vocabulary of OAI-PMH 2.0 as this repository speaks it: namespaces, errors, datestamps and identifiers.

Datestamps have the granularity of seconds (`YYYY-MM-DDThh:mm:ssZ`, UTC). A version's datestamp is its
`public_changed_at` truncated to the second; the database keeps the microseconds, which only order versions
changed within one second (together with the id).

Item identifiers follow the oai-identifier scheme: `oai:<namespace>:<record id>/v<number>`, e.g.
`oai:archive.example.org:abcde-12345/v2`. The namespace is settings.OAI_IDENTIFIER_NAMESPACE, by default the
host of settings.SITE_URL.
"""

import datetime
import re
from urllib.parse import urlsplit

from django.conf import settings

OAI_NAMESPACE = "http://www.openarchives.org/OAI/2.0/"
OAI_SCHEMA = "http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd"
OAI_IDENTIFIER_NAMESPACE = "http://www.openarchives.org/OAI/2.0/oai-identifier"
OAI_IDENTIFIER_SCHEMA = "http://www.openarchives.org/OAI/2.0/oai-identifier.xsd"
XSI_NAMESPACE = "http://www.w3.org/2001/XMLSchema-instance"

GRANULARITY = "YYYY-MM-DDThh:mm:ssZ"
DATESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

VERBS = ("Identify", "ListMetadataFormats", "ListSets", "GetRecord", "ListIdentifiers", "ListRecords")


class OAIError(Exception):
    """One OAI-PMH error condition; the endpoint answers it as `<error code="...">message</error>` (HTTP 200)."""

    CODES = ("badArgument", "badResumptionToken", "badVerb", "cannotDisseminateFormat", "idDoesNotExist",
             "noRecordsMatch", "noMetadataFormats", "noSetHierarchy")

    def __init__(self, code: str, message: str):
        assert code in self.CODES, code
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def echoes_arguments(self) -> bool:
        """The spec: the request element carries the arguments unless they were bad (badVerb, badArgument)."""
        return self.code not in ("badVerb", "badArgument")


# --- datestamps --------------------------------------------------------------------------------------------

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_SECOND = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def datestamp(moment: datetime.datetime) -> str:
    """A moment as an OAI-PMH datestamp: UTC, to the second."""
    return moment.astimezone(datetime.UTC).strftime(DATESTAMP_FORMAT)


def parse_utc(value: str) -> tuple[datetime.datetime, datetime.timedelta] | None:
    """A `from`/`until` argument as (start, length of the interval it names), or None when it is not one.

    `2024-05-04` names the whole day, `2024-05-04T10:00:00Z` one second; both granularities are accepted, as the
    spec requires of a repository whose granularity is seconds. The interval length tells the granularity apart.
    """
    try:
        if _DAY.fullmatch(value):
            moment = datetime.datetime.strptime(value, "%Y-%m-%d")
            return moment.replace(tzinfo=datetime.UTC), datetime.timedelta(days=1)
        if _SECOND.fullmatch(value):
            moment = datetime.datetime.strptime(value, DATESTAMP_FORMAT)
            return moment.replace(tzinfo=datetime.UTC), datetime.timedelta(seconds=1)
    except ValueError:  # 2024-02-30, 25:00:00
        return None
    return None


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


# --- identifiers -------------------------------------------------------------------------------------------

# The oai-identifier scheme's repositoryIdentifier: a domain name with at least two labels, not an IP address.
_REPOSITORY_IDENTIFIER = re.compile(r"[a-zA-Z][a-zA-Z0-9\-]*(\.[a-zA-Z][a-zA-Z0-9\-]*)+")
_LOCAL_IDENTIFIER = re.compile(r"(?P<record>[0-9a-z]{5}-[0-9a-z]{5})/v(?P<number>[1-9][0-9]{0,9})")


def identifier_namespace() -> str:
    """settings.OAI_IDENTIFIER_NAMESPACE, or else the host of settings.SITE_URL."""
    return settings.OAI_IDENTIFIER_NAMESPACE or urlsplit(settings.SITE_URL).hostname or "localhost"


def namespace_follows_oai_identifier_scheme(namespace: str) -> bool:
    """Whether Identify may describe the identifiers with the oai-identifier scheme (a host like 127.0.0.1 or
    localhost cannot: the scheme asks for a registered domain name)."""
    return bool(_REPOSITORY_IDENTIFIER.fullmatch(namespace))


def oai_identifier(public_id: str, number: int) -> str:
    return f"oai:{identifier_namespace()}:{public_id}/v{number}"


def parse_oai_identifier(identifier: str) -> tuple[str, int] | None:
    """(record public id, version number) of one of our identifiers, or None for anything else."""
    prefix = f"oai:{identifier_namespace()}:"
    if not identifier.startswith(prefix):
        return None
    match = _LOCAL_IDENTIFIER.fullmatch(identifier[len(prefix):])
    if match is None:
        return None
    return match["record"], int(match["number"])
