"""DataCite Metadata Schema 4.5: the JSON that DataCite's REST API takes as `attributes`, and its XML form.

`version_datacite_metadata` describes one version (its version DOI), `concept_datacite_metadata` the record as
a whole (the concept DOI, which resolves to the latest version). Both return the JSON shape that
the schema validates (through repository/integrations/datacite.py); `validate_datacite_metadata` lists what is
wrong with it in words a person can act on, and `datacite_xml` / `datacite_xml_element` render it: the one
DataCite XML serialiser, for the API, landing pages, OAI-PMH and backups alike. It drops the characters XML 1.0
cannot carry (a control character pasted into a title) rather than writing XML nobody can parse.

Versions are linked the way DataCite and Zenodo link them: each version IsVersionOf the concept DOI and
IsNewVersionOf / IsPreviousVersionOf its accepted neighbours; the concept HasVersion every accepted version.

The access to the files (repository/exports/access.py) is in `rightsList` after the licence, as an info:eu-repo
term in `rightsURI` (what OpenAIRE harvests), and an embargo's end is the `Available` date.
"""

import datetime
import mimetypes
import re

from django.conf import settings
from django.urls import reverse
from lxml import etree

from repository.exports import (
    ACCEPTED_STATES,
    accepted_versions,
    creator_name,
    publication_date,
    record_landing_url,
    version_label,
    version_landing_url,
)
from repository.exports.access import access_statement
from repository.exports.dublincore import xml_text
from repository.integrations import datacite
from repository.models import DataReference, RelatedIdentifier, ResourceType, Version
from repository.validators import normalize_doi, normalize_ror

SCHEMA_VERSION = "http://datacite.org/schema/kernel-4"
ORCID_SCHEME_URI = "https://orcid.org"
ROR_SCHEME_URI = "https://ror.org"
SPDX_SCHEME_URI = "https://spdx.org/licenses/"

# `types.resourceType` is free text next to the controlled resourceTypeGeneral; say what the files are.
RESOURCE_TYPE_TEXT = {ResourceType.NOTEBOOK: "Jupyter notebook", ResourceType.DATASET: "Dataset"}

# Our schemes are spelled as DataCite's relatedIdentifierType values; the table keeps that an explicit choice.
RELATED_IDENTIFIER_TYPES = {
    RelatedIdentifier.Scheme.DOI: "DOI",
    RelatedIdentifier.Scheme.URL: "URL",
    RelatedIdentifier.Scheme.ARXIV: "arXiv",
    RelatedIdentifier.Scheme.HANDLE: "Handle",
}

# `mimetypes` does not know notebooks; this is the type Jupyter and GitHub serve them with.
NOTEBOOK_MEDIA_TYPE = "application/x-ipynb+json"


def version_datacite_metadata(version: Version) -> dict:
    """DataCite 4.5 JSON for one version, identified by its version DOI (left out while it has none)."""
    metadata = _descriptive_metadata(version)
    if version.doi:
        metadata["doi"] = version.doi
    metadata["url"] = version_landing_url(version)
    metadata["version"] = version_label(version)
    metadata["relatedIdentifiers"] = _unique(_version_links(version) + _related_links(version))
    return _without_empty(metadata)


def concept_datacite_metadata(record) -> dict:
    """DataCite 4.5 JSON for the concept DOI: the latest version's description, linked to every version.

    The latest version is the newest one accepted and not withdrawn (what the concept DOI resolves to); if all
    were withdrawn, the newest withdrawn one; if none was accepted yet (the concept DOI reserved with the first
    draft), the draft. Raises ValueError for a record without versions.
    """
    accepted = accepted_versions(record)
    candidates = ([v for v in accepted if v.state != Version.State.WITHDRAWN] or accepted
                  or sorted(record.versions.all(), key=lambda v: v.number))
    if not candidates:
        raise ValueError(f"Record {record.public_id} has no version to describe.")
    latest = candidates[-1]
    metadata = _descriptive_metadata(latest)
    if record.concept_doi:
        metadata["doi"] = record.concept_doi
    metadata["url"] = record_landing_url(record)
    has_version = [_link(v.doi, "DOI", "HasVersion") for v in accepted]
    metadata["relatedIdentifiers"] = _unique(has_version + _related_links(latest))
    return _without_empty(metadata)


def datacite_xml_element(metadata: dict) -> etree._Element:
    """The DataCite 4.5 `<resource>` of `metadata` (as returned above), as an lxml element to embed."""
    return datacite.schema_xml_element(_xml_safe(metadata))


def datacite_xml(metadata: dict, *, declaration: bool = True) -> str:
    """The DataCite 4.5 XML of `metadata` (as returned above), pretty-printed, with its XML declaration unless
    embedded in another document.

    The XSD requires the identifier, so the XML of a version without a DOI yet is a preview, not a valid record.
    """
    element = datacite_xml_element(metadata)
    if not declaration:
        return etree.tostring(element, encoding="unicode")
    return etree.tostring(element, pretty_print=True, xml_declaration=True, encoding="utf-8").decode("utf-8")


def _xml_safe(value):
    if isinstance(value, str):
        return xml_text(value)
    if isinstance(value, dict):
        return {key: _xml_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_xml_safe(item) for item in value]
    return value


def validate_datacite_metadata(metadata: dict) -> list[str]:
    """What the DataCite 4.5 JSON schema finds wrong with `metadata`, one sentence each; empty when valid."""
    errors = datacite.schema_problems(metadata)
    paths = [tuple(error.absolute_path) for error in errors]
    problems = set()
    for error, path in zip(errors, paths, strict=True):
        # One bad value inside a creator also fails the schema's `unevaluatedProperties` on the whole creator,
        # listing every one of its fields as "unexpected"; that echo hides the real problem, so drop it.
        if error.validator == "unevaluatedProperties" and any(
            other[: len(path)] == path and other_error is not error
            for other_error, other in zip(errors, paths, strict=True)
        ):
            continue
        problems.add(f"{'.'.join(str(part) for part in path) or 'metadata'}: {error.message}")
    return sorted(problems)


# --- the parts ----------------------------------------------------------------------------------------------


def _descriptive_metadata(version: Version) -> dict:
    """Everything that describes the work itself, shared by the version and the concept DOI."""
    files = list(version.files.all())
    return {
        "types": {"resourceTypeGeneral": version.resource_type,
                  "resourceType": RESOURCE_TYPE_TEXT.get(version.resource_type, version.resource_type)},
        "creators": [_creator(c) for c in version.creators.all()],
        "titles": [{"title": version.title}] if version.title else [],
        "publisher": {"name": settings.DOI_PUBLISHER},
        "publicationYear": str(publication_date(version).year),
        "subjects": [{"subject": keyword} for keyword in version.keywords],
        "dates": _dates(version),
        "sizes": [f"{len(files)} file{'s' if len(files) != 1 else ''}",
                  f"{sum(f.blob.size for f in files)} bytes"] if files else [],
        "formats": sorted({media_type for f in files if (media_type := _media_type(f.path))}),
        "rightsList": _rights_list(version),
        "descriptions": _descriptions(version),
        "fundingReferences": [_funding(entry) for entry in version.funding],
        "schemaVersion": SCHEMA_VERSION,
    }


def _creator(creator) -> dict:
    name = creator_name(creator)
    entry = {"name": name.display, "nameType": "Personal" if name.is_person else "Organizational"}
    if name.given:
        entry["givenName"] = name.given
    if name.family:
        entry["familyName"] = name.family
    if creator.orcid:
        entry["nameIdentifiers"] = [{"nameIdentifier": f"https://orcid.org/{creator.orcid}",
                                     "nameIdentifierScheme": "ORCID", "schemeUri": ORCID_SCHEME_URI}]
    if creator.affiliation:
        affiliation = {"name": creator.affiliation}
        if creator.affiliation_ror:
            affiliation.update(affiliationIdentifier=f"https://ror.org/{normalize_ror(creator.affiliation_ror)}",
                               affiliationIdentifierScheme="ROR", schemeUri=ROR_SCHEME_URI)
        entry["affiliation"] = [affiliation]
    return entry


def _dates(version: Version) -> list[dict]:
    dates = [{"date": _utc_date(version.created), "dateType": "Created"}]
    if version.submitted_at:
        dates.append({"date": _utc_date(version.submitted_at), "dateType": "Submitted"})
    if version.published_at:
        dates.append({"date": publication_date(version).isoformat(), "dateType": "Issued"})
    if available := access_statement(version).available_from:
        # DataCite's practice for an embargo (and OpenAIRE's): the day the files become available.
        dates.append({"date": available.isoformat(), "dateType": "Available"})
    if version.withdrawn_at:
        dates.append({"date": _utc_date(version.withdrawn_at), "dateType": "Withdrawn"})
    return dates


def _utc_date(moment) -> str:
    return moment.astimezone(datetime.UTC).date().isoformat()


def _media_type(path: str) -> str | None:
    if path.lower().endswith(".ipynb"):
        return NOTEBOOK_MEDIA_TYPE
    return mimetypes.guess_type(path, strict=False)[0]


def _rights_list(version: Version) -> list[dict]:
    """The licence, then the access right as OpenAIRE's guidelines for data archives write it in DataCite
    (`rightsURI` an info:eu-repo access term; there is no registered rightsIdentifierScheme for those terms)."""
    access = access_statement(version)
    licence = [_rights(version.license)] if version.license else []
    return [*licence, {"rights": access.label, "rightsUri": access.rights_uri}]


def _rights(spdx_id: str) -> dict:
    # The model keeps no licence title; the SPDX id doubles as the human-readable text.
    return {"rights": spdx_id, "rightsUri": f"{SPDX_SCHEME_URI}{spdx_id}", "rightsIdentifier": spdx_id,
            "rightsIdentifierScheme": "SPDX", "schemeUri": SPDX_SCHEME_URI}


def _descriptions(version: Version) -> list[dict]:
    descriptions = []
    if version.description.strip():
        descriptions.append({"description": version.description, "descriptionType": "Abstract"})
    if version.container_image:
        # What a reader needs to re-run the notebook, in the one place harvesters look for technical notes.
        notebook = f"The notebook {version.notebook_path} was" if version.notebook_path else "It was"
        descriptions.append({"description": f"{notebook} re-executed in the container image {version.container_image}.",
                             "descriptionType": "TechnicalInfo"})
    return descriptions


def _funding(entry: dict) -> dict:
    reference = {"funderName": entry.get("funder_name", "")}
    if entry.get("funder_identifier"):
        identifier, identifier_type = _funder_identifier(entry["funder_identifier"])
        reference.update(funderIdentifier=identifier, funderIdentifierType=identifier_type)
    if entry.get("award_number"):
        reference["awardNumber"] = entry["award_number"]
    if entry.get("award_title"):
        reference["awardTitle"] = entry["award_title"]
    return reference


def _funder_identifier(value: str) -> tuple[str, str]:
    """Recognise the identifier schemes DataCite names, written the way DataCite recommends (as URLs)."""
    lowered = value.lower()
    if "ror.org/" in lowered or re.fullmatch(r"0[a-z0-9]{6}\d{2}", lowered):
        return f"https://ror.org/{normalize_ror(value)}", "ROR"
    doi = normalize_doi(value)
    if doi.startswith("10.13039/"):
        return f"https://doi.org/{doi}", "Crossref Funder ID"
    if re.fullmatch(r"\d{4} ?\d{4} ?\d{4} ?\d{3}[\dX]", value) or "isni.org/" in lowered:
        return value, "ISNI"
    if lowered.startswith(("grid.", "https://www.grid.ac/")):
        return value, "GRID"
    return value, "Other"


def _version_links(version: Version) -> list[dict]:
    """IsVersionOf the concept DOI, and IsNewVersionOf / IsPreviousVersionOf the accepted neighbours."""
    links = []
    if version.record.concept_doi:
        links.append(_link(version.record.concept_doi, "DOI", "IsVersionOf"))
    siblings = [v for v in accepted_versions(version.record) if v.pk != version.pk]
    previous = [v for v in siblings if v.number < version.number]
    following = [v for v in siblings if v.number > version.number]
    if previous:
        links.append(_link(previous[-1].doi, "DOI", "IsNewVersionOf"))
    if following:
        links.append(_link(following[0].doi, "DOI", "IsPreviousVersionOf"))
    return links


def _related_links(version: Version) -> list[dict]:
    """What the submitter linked (the paper it supports, ...) and the data the notebook reads."""
    links = []
    for related in version.related_identifiers.all():
        identifier = related.identifier
        if related.scheme == RelatedIdentifier.Scheme.DOI:
            identifier = normalize_doi(identifier)
        elif related.scheme == RelatedIdentifier.Scheme.ARXIV and not identifier.lower().startswith("arxiv:"):
            identifier = f"arXiv:{identifier}"  # the form DataCite's documentation uses
        links.append(_link(identifier, RELATED_IDENTIFIER_TYPES[related.scheme], related.relation))
    for reference in version.data_references.all():
        links.append(_data_reference_link(reference))
    return links


def _data_reference_link(reference: DataReference) -> dict:
    if reference.kind == DataReference.Kind.DOI:
        return _link(normalize_doi(reference.identifier), "DOI", "References")
    if reference.kind == DataReference.Kind.REPOSITORY_FILE:
        return _repository_file_link(reference.identifier)
    # url, and archive_query (whose identifier is the https URL of the archive's API the query is sent to).
    return _link(reference.identifier, "URL", "References")


def _repository_file_link(identifier: str) -> dict:
    """A file of one of our versions ("<record id>/v<n>/<path>"): cite that version's DOI, else the file's URL."""
    record_id, _, rest = identifier.partition("/")
    number, _, path = rest.partition("/")
    if number.startswith("v") and number[1:].isdigit():
        cited = (Version.objects.filter(record__public_id=record_id, number=int(number[1:]),
                                        state__in=ACCEPTED_STATES)
                 .exclude(doi="").values_list("doi", flat=True).first())
        if cited:
            return _link(cited, "DOI", "References")
        url = reverse("repository:published_file",
                      kwargs={"record_id": record_id, "number": int(number[1:]), "file_path": path})
    else:
        # Services store the resolved "/v<n>/" form; an older row naming only the record cites the record.
        url = reverse("repository:record_landing", kwargs={"record_id": record_id})
    return _link(f"{settings.SITE_URL}{url}", "URL", "References")


def _link(identifier: str, identifier_type: str, relation: str) -> dict:
    return {"relatedIdentifier": identifier, "relatedIdentifierType": identifier_type, "relationType": relation}


def _unique(links: list[dict]) -> list[dict]:
    # Two data references into one version would otherwise name its DOI twice.
    seen, unique = set(), []
    for link in links:
        key = (link["relatedIdentifier"].lower(), link["relationType"])
        if key not in seen:
            seen.add(key)
            unique.append(link)
    return unique


def _without_empty(metadata: dict) -> dict:
    # Empty optional lists are left out; the mandatory ones stay, so validation names what is missing.
    mandatory = ("creators", "titles")
    return {key: value for key, value in metadata.items() if value or key in mandatory}
