"""Exports of a version's metadata: DataCite, CSL-JSON, BibTeX, RIS and formatted citations.

Every export is a pure function of the database rows (Version/Record -> dict or str): it reads, never writes and
never reaches the network, so the DOI sync, the API's content negotiation, the landing pages and OAI-PMH can all
call it, and a retried task produces the same output. Import the functions from their modules
(`repository.exports.datacite.version_datacite_metadata`, ...); this package holds only the small rules they
share, so that a name or a date is written the same way in every format.

The functions read `version.creators`, `.files` (with `blob`), `.related_identifiers`, `.data_references` and
`version.record.versions` through `.all()`, so a caller exporting many versions (OAI-PMH) can `prefetch_related`
those and avoid queries per version.
"""

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

# The states in which a version has been accepted by a moderator and carries a DOI that DataCite knows
# (a withdrawn version keeps its DOI, which then resolves to a tombstone).
ACCEPTED_STATES = ("publishing", "published", "withdrawn")


@dataclass(frozen=True)
class CreatorName:
    """How one creator is named in every export: a person (family and given names) or an organisation."""

    display: str  # "Family, Given" for a person, the organisation's name otherwise
    is_person: bool
    family: str = ""
    given: str = ""


def creator_name(creator) -> CreatorName:
    """Read a Creator row as a person or an organisation.

    The model has no explicit "person or organisation" field; its documented convention is that a person's
    `name` is written "Family, Given". So a creator with a family name, a comma in the name, a given name or an
    ORCID iD is a person; anything else is an organisation.
    """
    name = " ".join(creator.name.split())
    family, given = creator.family_name.strip(), creator.given_name.strip()
    if family:
        return CreatorName(f"{family}, {given}" if given else family, True, family, given)
    if "," in name:
        family, _, given = (part.strip() for part in name.partition(","))
        return CreatorName(f"{family}, {given}" if given else family, True, family, given)
    if given or creator.orcid:
        # A person whose name we cannot split (e.g. a mononym): keep it whole rather than guess.
        return CreatorName(name, True)
    return CreatorName(name, False)


def version_label(version) -> str:
    """The version as readers see it: the author's own label (v1.2) or else our version number."""
    return version.version_label.strip() or str(version.number)


def publication_date(version) -> datetime.date:
    """The date the version was (or, while it is being published, is being) published, in UTC.

    DataCite needs a publication year before `published_at` is written (the DOI is registered while the version
    is `publishing`), and that year is now.
    """
    moment = version.published_at or timezone.now()
    return moment.astimezone(datetime.UTC).date()


def doi_url(doi: str) -> str:
    return f"https://doi.org/{doi}"


def version_landing_url(version) -> str:
    path = reverse("repository:version_landing",
                   kwargs={"record_id": version.record.public_id, "number": version.number})
    return f"{settings.SITE_URL}{path}"


def record_landing_url(record) -> str:
    return f"{settings.SITE_URL}{reverse('repository:record_landing', kwargs={'record_id': record.public_id})}"


def accepted_versions(record) -> list:
    """The record's versions that have been accepted and have a DOI, oldest first."""
    versions = [v for v in record.versions.all() if v.state in ACCEPTED_STATES and v.doi]
    return sorted(versions, key=lambda v: v.number)
