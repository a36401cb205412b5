"""schema.org JSON-LD of a version and of a concept (a record as a whole), for landing pages and harvesters.

What search engines (Google Dataset Search), Zenodo-style harvesters and the FAIR tooling read:
- `@type`: `SoftwareSourceCode` for a notebook (written in Python: every notebook is re-executed with the
  `python3` kernel, on the Jupyter runtime) and `Dataset` for a dataset.
- `@id` and `identifier`: the DOI as a URL, and again as a `PropertyValue` with `propertyID` "DOI" (what Google
  recommends); `url` is the landing page. A version without a DOI yet is identified by its landing page.
- `author`: a `Person` (`@id` their ORCID iD, `givenName` / `familyName`, `affiliation` an `Organization`, with
  its ROR id as `@id`) or an `Organization`.
- the files: `distribution` (`DataDownload`) for a Dataset, `associatedMedia` (`MediaObject`) for a notebook, each
  with `contentUrl`, `encodingFormat`, `contentSize` and `sha256`. A withdrawn version lists none: its files are no
  longer served, and `creativeWorkStatus` says "Withdrawn". Nor does a version whose files are closed (embargoed
  or restricted): no download link of a closed file is published.
- access: `isAccessibleForFree` (true only when everyone may download the files) and `conditionsOfAccess` (the
  access in a sentence, with an embargo's end date) (repository/exports/access.py).
- versions: a version `isPartOf` its concept (the concept DOI) and `isBasedOn` the version it is a new version of;
  the concept `hasPart` every accepted version. `isBasedOn` also lists what the submitter said the work is derived
  from and the data the notebook reads (DOIs and URLs); `citation` what it cites or references.

The concept (`concept_jsonld`) is described by its latest version, as DataCite's concept metadata is
(`repository.exports.datacite.concept_datacite_metadata`): the latest version's title, authors, licence and
files, identified by the concept DOI, with no `version` of its own.

Both are pure functions of the database rows (see repository/exports/__init__.py for what to prefetch).
`jsonld_script` writes a document into an HTML `<script>` element that user text cannot break out of.
"""

import datetime
import json
import mimetypes

from django.conf import settings
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe

from repository.exports import (
    accepted_versions,
    creator_name,
    doi_url,
    publication_date,
    record_landing_url,
    version_label,
    version_landing_url,
)
from repository.exports.access import access_statement, files_linkable
from repository.models import DataReference, RelatedIdentifier, ResourceType, Version
from repository.validators import normalize_doi, normalize_ror

SCHEMA_ORG = "https://schema.org"
SCHEMA_TYPES = {ResourceType.NOTEBOOK: "SoftwareSourceCode", ResourceType.DATASET: "Dataset"}
SPDX_LICENSE_URL = "https://spdx.org/licenses/{}"
NOTEBOOK_MEDIA_TYPE = "application/x-ipynb+json"

# Submitter-given relations that schema.org can say: what the work is derived from, what it cites.
IS_BASED_ON_RELATIONS = (RelatedIdentifier.Relation.IS_DERIVED_FROM,)
CITATION_RELATIONS = (RelatedIdentifier.Relation.CITES, RelatedIdentifier.Relation.REFERENCES)

# Escaped so that no user text can close the <script> element or open a comment inside it; the JSON stays the
# same (`\u003c` is `<` to any JSON parser). The same table as django.utils.html.json_script.
_SCRIPT_ESCAPES = {ord("<"): "\\u003C", ord(">"): "\\u003E", ord("&"): "\\u0026"}


def schema_type(version: Version) -> str:
    """The schema.org type of a version: SoftwareSourceCode (a notebook) or Dataset."""
    return SCHEMA_TYPES.get(version.resource_type, "CreativeWork")


def file_media_type(path: str) -> str | None:
    """The media type of a file by its name, or None when it cannot be told."""
    if path.lower().endswith(".ipynb"):
        return NOTEBOOK_MEDIA_TYPE
    return mimetypes.guess_type(path, strict=False)[0]


def file_download_url(version: Version, path: str) -> str:
    """The absolute download URL of a file. `;` and `,` (which reverse() leaves as they are) are escaped: they are
    legal in a URL, but common Link header parsers split on them."""
    url = reverse("repository:published_file",
                  kwargs={"record_id": version.record.public_id, "number": version.number, "file_path": path})
    return f"{settings.SITE_URL}{url.replace(';', '%3B').replace(',', '%2C')}"


def version_jsonld(version: Version) -> dict:
    """The schema.org description of one version."""
    record = version.record
    document = {
        "@context": SCHEMA_ORG,
        "@type": schema_type(version),
        **_identification(version.doi, version_landing_url(version)),
        **_description(version),
        "version": version_label(version),
        "datePublished": publication_date(version).isoformat(),
        "dateModified": _datetime(version.public_changed_at),
        "creativeWorkStatus": _status(version),
        **_access(version),
    }
    if record.concept_doi:
        document["isPartOf"] = {"@type": schema_type(version), **_identification(record.concept_doi,
                                                                                  record_landing_url(record))}
    previous = [v for v in accepted_versions(record) if v.number < version.number]
    based_on = [_reference(doi_url(previous[-1].doi))] if previous else []
    document["isBasedOn"] = _unique(based_on + _related(version, IS_BASED_ON_RELATIONS) + _data_references(version))
    document["citation"] = _related(version, CITATION_RELATIONS)
    document.update(_files(version))
    return _without_empty(document)


def concept_jsonld(record) -> dict:
    """The schema.org description of a concept: its latest version's description under the concept DOI, with
    every accepted version as a part.

    The latest version is the newest accepted one not withdrawn (what the concept DOI resolves to), or the newest
    withdrawn one when all were withdrawn. Raises ValueError for a record with no accepted version.
    """
    accepted = accepted_versions(record)
    if not accepted:
        raise ValueError(f"Record {record.public_id} has no accepted version to describe.")
    latest = ([v for v in accepted if v.state != Version.State.WITHDRAWN] or accepted)[-1]
    changes = [v.public_changed_at for v in accepted if v.public_changed_at]
    document = {
        "@context": SCHEMA_ORG,
        "@type": schema_type(latest),
        **_identification(record.concept_doi, record_landing_url(record)),
        **_description(latest),
        "datePublished": publication_date(latest).isoformat(),
        "dateModified": _datetime(max(changes)) if changes else None,
        "creativeWorkStatus": _status(latest),
        **_access(latest),
        "hasPart": [_version_part(v) for v in reversed(accepted)],  # newest first, as the landing page lists them
        "isBasedOn": _unique(_related(latest, IS_BASED_ON_RELATIONS) + _data_references(latest)),
        "citation": _related(latest, CITATION_RELATIONS),
    }
    document.update(_files(latest))
    return _without_empty(document)


def jsonld_script(document: dict) -> SafeString:
    """`document` as a `<script type="application/ld+json">` element, safe to put in a page as it is."""
    text = json.dumps(document, ensure_ascii=False, indent=1).translate(_SCRIPT_ESCAPES)
    return mark_safe(f'<script type="application/ld+json">{text}</script>')  # escaped above


# --- the parts ----------------------------------------------------------------------------------------------


def _identification(doi: str, landing_url: str) -> dict:
    if not doi:
        return {"@id": landing_url, "url": landing_url}
    return {
        "@id": doi_url(doi),
        "identifier": [doi_url(doi), {"@type": "PropertyValue", "propertyID": "DOI", "value": doi,
                                      "url": doi_url(doi)}],
        "url": landing_url,
    }


def _description(version: Version) -> dict:
    """What describes the work itself, shared by a version and its concept."""
    description = {
        "name": version.title,
        "description": version.description,
        "author": [_author(creator) for creator in version.creators.all()],
        "license": SPDX_LICENSE_URL.format(version.license) if version.license else None,
        "keywords": list(version.keywords),
        "publisher": {"@type": "Organization", "name": settings.DOI_PUBLISHER},
    }
    if version.resource_type == ResourceType.NOTEBOOK:
        description["programmingLanguage"] = {"@type": "ComputerLanguage", "name": "Python",
                                              "url": "https://www.python.org/"}
        description["runtimePlatform"] = "Jupyter"
    return description


def _author(creator) -> dict:
    name = creator_name(creator)
    if not name.is_person:
        return {"@type": "Organization", "name": name.display}
    person = {"@type": "Person", "name": name.display}
    if creator.orcid:
        person["@id"] = f"https://orcid.org/{creator.orcid}"
    if name.given:
        person["givenName"] = name.given
    if name.family:
        person["familyName"] = name.family
    if creator.affiliation:
        affiliation = {"@type": "Organization", "name": creator.affiliation}
        if creator.affiliation_ror:
            affiliation["@id"] = f"https://ror.org/{normalize_ror(creator.affiliation_ror)}"
        person["affiliation"] = affiliation
    return person


def _access(version: Version) -> dict:
    """Whether the files are free to download, and on what terms; a tombstone says neither (it has no files)."""
    if version.state == Version.State.WITHDRAWN:
        return {}
    access = access_statement(version)
    return {"isAccessibleForFree": access.is_open, "conditionsOfAccess": access.conditions}


def _files(version: Version) -> dict:
    """`distribution` of a Dataset or `associatedMedia` of a notebook; nothing once withdrawn, nothing while the
    files are closed, nothing for a draft (its files are not public)."""
    if not files_linkable(version):
        return {}
    dataset = version.resource_type == ResourceType.DATASET
    media = []
    for version_file in sorted(version.files.all(), key=lambda f: f.path):
        medium = {
            "@type": "DataDownload" if dataset else "MediaObject",
            "name": version_file.path,
            "contentUrl": file_download_url(version, version_file.path),
            "encodingFormat": file_media_type(version_file.path),
            "contentSize": f"{version_file.blob.size} B",
            "sha256": version_file.blob.sha256,
        }
        media.append({key: value for key, value in medium.items() if value})
    return {"distribution" if dataset else "associatedMedia": media}


def _version_part(version: Version) -> dict:
    return _without_empty({
        "@type": schema_type(version),
        **_identification(version.doi, version_landing_url(version)),
        "version": version_label(version),
        "datePublished": publication_date(version).isoformat(),
        "creativeWorkStatus": _status(version),
    })


def _related(version: Version, relations: tuple[str, ...]) -> list[dict]:
    return [_reference(url) for related in version.related_identifiers.all()
            if related.relation in relations and (url := related_url(related.scheme, related.identifier))]


def related_url(scheme: str, identifier: str) -> str:
    """Where a related identifier resolves (DOI, arXiv, Handle, or an http(s) URL as such); "" when it has no
    resolver. Also used by the landing page's list and the RO-Crate."""
    identifier = identifier.strip()
    if scheme == RelatedIdentifier.Scheme.DOI:
        return doi_url(normalize_doi(identifier))
    if scheme == RelatedIdentifier.Scheme.ARXIV:
        bare = identifier[len("arxiv:"):] if identifier.lower().startswith("arxiv:") else identifier
        return f"https://arxiv.org/abs/{bare}"
    if scheme == RelatedIdentifier.Scheme.HANDLE:
        return f"https://hdl.handle.net/{identifier}"
    return identifier if identifier.lower().startswith(("https://", "http://")) else ""


def _data_references(version: Version) -> list[dict]:
    """The data the notebook reads that has an identifier of its own (a DOI or a URL)."""
    urls = []
    for reference in version.data_references.all():
        if reference.kind == DataReference.Kind.DOI:
            urls.append(doi_url(normalize_doi(reference.identifier)))
        elif reference.kind == DataReference.Kind.URL:
            urls.append(reference.identifier)
    return [_reference(url) for url in urls]


def _reference(url: str) -> dict:
    return {"@id": url, "url": url}


def _unique(references: list[dict]) -> list[dict]:
    seen = set()
    return [r for r in references if not (r["@id"] in seen or seen.add(r["@id"]))]


def _status(version: Version) -> str:
    return "Withdrawn" if version.state == Version.State.WITHDRAWN else "Published"


def _datetime(moment: datetime.datetime | None) -> str | None:
    return moment.astimezone(datetime.UTC).isoformat(timespec="seconds") if moment else None


def _without_empty(document: dict) -> dict:
    return {key: value for key, value in document.items() if value not in (None, "", [], {})}
