"""The metadata formats the provider disseminates, each a thin adapter over repository.exports.

- `oai_dc`: unqualified Dublin Core (repository/exports/dublincore.py), for every item;
- `oai_datacite`: the DataCite Metadata Schema 4.5 `<resource>` (repository/exports/datacite.py) directly inside
  `<metadata>`, with its kernel-4.5 schemaLocation; only for items with a DOI (the XSD requires an identifier).

Each format names what its export reads (`prefetch`), so building the stored payloads of many versions
(harvest/provider/fragments.py) costs a fixed number of queries, and a
filter (`available`) that selects the items it can describe, so lists in that format leave the others out.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import Q, QuerySet

from repository.exports.datacite import datacite_xml, version_datacite_metadata
from repository.exports.dublincore import OAI_DC_NAMESPACE, OAI_DC_SCHEMA, dublin_core_xml, version_dublin_core
from repository.models import Creator, DataReference, RelatedIdentifier, Version, VersionFile

DATACITE_NAMESPACE = "http://datacite.org/schema/kernel-4"
DATACITE_SCHEMA = "http://schema.datacite.org/meta/kernel-4.5/metadata.xsd"

# What the exports read besides the version and its record, as (owner, reverse relation, rows) for
# items.prefetch_rows. The rows are ordered within their version; the models' default ordering would join
# through the version and the record for nothing.
_CREATORS = ("version", "creators", Creator.objects.order_by("position"))
_SIBLINGS = ("record", "versions",  # only what accepted_versions() and the version links read
             Version.objects.only("id", "record_id", "number", "state", "doi").order_by("number"))


# The columns a header reads (identifier, datestamp, status, sets); the formats add what their export reads.
HEADER_COLUMNS = ("id", "record", "record__public_id", "number", "state", "public_changed_at", "resource_type")


@dataclass(frozen=True)
class MetadataFormat:
    prefix: str
    schema: str
    namespace: str
    render: Callable[[Version], str]  # the payload, an XML fragment with its namespaces declared
    prefetch: tuple[tuple[str, str, QuerySet], ...]
    # The Version (and record__) columns its export reads, or None for all of them. Loading only those saves
    # parsing unused timestamps and JSON for every row; reading one not listed would cost a query per item,
    # which the query-count tests catch.
    columns: tuple[str, ...] | None
    # Which items the format can describe: as a filter for lists, and as a test of one item.
    available: Q
    describes: Callable[[Version], bool]


def _render_oai_dc(version: Version) -> str:
    return dublin_core_xml(version_dublin_core(version), declaration=False)


def _render_oai_datacite(version: Version) -> str:
    return datacite_xml(version_datacite_metadata(version), declaration=False)


OAI_DC = MetadataFormat(
    prefix="oai_dc", schema=OAI_DC_SCHEMA, namespace=OAI_DC_NAMESPACE, render=_render_oai_dc,
    prefetch=(_CREATORS, _SIBLINGS,
              ("version", "files", VersionFile.objects.only("id", "version_id", "path").order_by("path"))),
    columns=(*HEADER_COLUMNS, "record__concept_doi", "doi", "title", "description", "license", "keywords",
             "published_at", "access_files", "embargo_until"),
    available=Q(), describes=lambda version: True,
)
OAI_DATACITE = MetadataFormat(
    prefix="oai_datacite", schema=DATACITE_SCHEMA, namespace=DATACITE_NAMESPACE, render=_render_oai_datacite,
    prefetch=(_CREATORS, _SIBLINGS,
              ("version", "files", VersionFile.objects.select_related("blob").order_by("path")),
              ("version", "related_identifiers", RelatedIdentifier.objects.order_by("position")),
              ("version", "data_references", DataReference.objects.order_by("position"))),
    columns=None,
    available=~Q(doi=""), describes=lambda version: bool(version.doi),
)

FORMATS = {f.prefix: f for f in (OAI_DC, OAI_DATACITE)}


def formats_for(version: Version) -> list[MetadataFormat]:
    """The formats one item can be disseminated in. A withdrawn version keeps them: it is still listed (as
    deleted) in each, which is what a harvester asking ListMetadataFormats about it needs to know."""
    return [f for f in FORMATS.values() if f.describes(version)]
