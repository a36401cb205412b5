"""Simple (unqualified) Dublin Core of a version, and its `oai_dc` XML.

`version_dublin_core` returns the fifteen-element vocabulary as a dict of lists (element name -> values, in the
order harvesters expect to read them); `dublin_core_xml` serialises it as the `oai_dc:dc` record that OAI-PMH
requires (validated against oai_dc.xsd in the tests). The dict is meant to be reused as it is
for the `DC.*` meta tags of a landing page, so the two never disagree.

What goes where:
- title, creator ("Family, Given" or an organisation), subject (keywords), description (the abstract);
- publisher (settings.DOI_PUBLISHER) and date (the publication date, W3CDTF `YYYY-MM-DD`, UTC);
- type: the DCMI Type term (Software for a notebook, Dataset) and DataCite's resourceTypeGeneral;
- format: the media types of the version's files;
- identifier: the DOI as a URL, then the landing page;
- relation: the concept DOI, then the previous and the next accepted version's DOIs;
- rights: the licence as its SPDX URL (first: readers that take one rights statement take the licence), then the
  access right as an info:eu-repo term (openAccess, embargoedAccess, restrictedAccess: what OpenAIRE harvesters
  read); while an embargo runs, `date` also carries its end as
  `info:eu-repo/date/embargoEnd/YYYY-MM-DD` (OpenAIRE's guidelines for literature repositories, version 3).
There is no `language`: the model keeps no language for the text, and guessing one would be worse than none.
"""

import mimetypes
import re

from django.conf import settings

from repository.exports import (
    accepted_versions,
    creator_name,
    doi_url,
    publication_date,
    version_landing_url,
)
from repository.exports.access import access_statement
from repository.models import ResourceType, Version

OAI_DC_NAMESPACE = "http://www.openarchives.org/OAI/2.0/oai_dc/"
OAI_DC_SCHEMA = "http://www.openarchives.org/OAI/2.0/oai_dc.xsd"
DC_NAMESPACE = "http://purl.org/dc/elements/1.1/"
XSI_NAMESPACE = "http://www.w3.org/2001/XMLSchema-instance"

# The order of the elements in the DCMI element set; oai_dc allows any order, readers like this one.
DC_ELEMENTS = ("title", "creator", "subject", "description", "publisher", "contributor", "date", "type", "format",
               "identifier", "source", "language", "relation", "coverage", "rights")

# DCMI Type Vocabulary term first (what generic harvesters understand), DataCite's resourceTypeGeneral second.
DCMI_TYPES = {ResourceType.NOTEBOOK: ("Software", "ComputationalNotebook"), ResourceType.DATASET: ("Dataset",)}

SPDX_LICENSE_URL = "https://spdx.org/licenses/{}"
NOTEBOOK_MEDIA_TYPE = "application/x-ipynb+json"

# XML 1.0 refuses most control characters; a description pasted from a PDF can carry them. They carry no meaning,
# so they are dropped rather than failing the whole response.
_NOT_XML_CHARACTERS = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

_XML_DECLARATION = "<?xml version='1.0' encoding='UTF-8'?>\n"
_OAI_DC_OPEN = (f'<oai_dc:dc xmlns:oai_dc="{OAI_DC_NAMESPACE}" xmlns:dc="{DC_NAMESPACE}" xmlns:xsi="{XSI_NAMESPACE}" '
                f'xsi:schemaLocation="{OAI_DC_NAMESPACE} {OAI_DC_SCHEMA}">')


def version_dublin_core(version: Version) -> dict[str, list[str]]:
    """The Dublin Core elements of one version; elements without a value are left out.

    Reads `version.record`, `.creators`, `.files` and `version.record.versions` (prefetch them when exporting
    many versions; see repository/exports/__init__.py).
    """
    identifiers = [doi_url(version.doi)] if version.doi else []
    identifiers.append(version_landing_url(version))
    access = access_statement(version)
    embargo_end = [f"info:eu-repo/date/embargoEnd/{access.embargo_end.isoformat()}"] if access.embargo_end else []
    elements = {
        "title": [version.title],
        "creator": [creator_name(creator).display for creator in version.creators.all()],
        "subject": list(version.keywords),
        "description": [version.description],
        "publisher": [settings.DOI_PUBLISHER],
        "date": [publication_date(version).isoformat(), *embargo_end],
        "type": list(DCMI_TYPES.get(version.resource_type, (version.resource_type,))),
        "format": sorted({media_type for f in version.files.all() if (media_type := _media_type(f.path))}),
        "identifier": identifiers,
        "relation": _relations(version),
        "rights": [*([SPDX_LICENSE_URL.format(version.license)] if version.license else []), access.rights_uri],
    }
    return {name: values for name in DC_ELEMENTS
            if (values := [v for v in elements.get(name, ()) if v and v.strip()])}


def dublin_core_xml(elements: dict[str, list[str]], *, declaration: bool = True) -> str:
    """The `oai_dc:dc` record of `elements` (as returned above), with its namespaces and schemaLocation.

    Written as text with escaping, not through a DOM: OAI-PMH renders a hundred of these per response, and this
    is several times faster than building elements. `declaration=False` gives the fragment to embed.
    """
    parts = [_XML_DECLARATION if declaration else "", _OAI_DC_OPEN]
    for name in DC_ELEMENTS:
        for value in elements.get(name, ()):
            parts.append(f"<dc:{name}>{xml_escape(value)}</dc:{name}>")
    parts.append("</oai_dc:dc>")
    return "".join(parts)


def xml_escape(value: str) -> str:
    """`value` as XML character data or attribute value (in double quotes), without the characters XML 1.0
    cannot carry."""
    return xml_text(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def xml_text(value: str) -> str:
    """`value` without the characters XML 1.0 cannot carry."""
    return _NOT_XML_CHARACTERS.sub("", value)


def _relations(version: Version) -> list[str]:
    relations = [doi_url(version.record.concept_doi)] if version.record.concept_doi else []
    siblings = [v for v in accepted_versions(version.record) if v.pk != version.pk]
    previous = [v for v in siblings if v.number < version.number]
    following = [v for v in siblings if v.number > version.number]
    if previous:
        relations.append(doi_url(previous[-1].doi))
    if following:
        relations.append(doi_url(following[0].doi))
    return relations


def _media_type(path: str) -> str | None:
    if path.lower().endswith(".ipynb"):
        return NOTEBOOK_MEDIA_TYPE
    return mimetypes.guess_type(path, strict=False)[0]
