"""Renderers for the formats of DOI content negotiation. The view builds the text with repository.exports
(the same functions the landing page and OAI-PMH use); these only carry it out with the right media type.
Errors (problem+json dicts) still go out as JSON whatever was asked for."""

import json

from rest_framework.renderers import BaseRenderer, JSONRenderer

from repository.errors import InvalidInput
from repository.exports.bibtex import version_bibtex
from repository.exports.citation import version_citation
from repository.exports.csl import version_csl_json
from repository.exports.datacite import datacite_xml, version_datacite_metadata
from repository.exports.jsonld import version_jsonld
from repository.exports.ris import version_ris

MAX_STYLE_LENGTH = 100


class _ExportRenderer(BaseRenderer):
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, str):
            return data.encode("utf-8")
        return json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")


class DataCiteJsonRenderer(_ExportRenderer):
    media_type, format = "application/vnd.datacite.datacite+json", "datacite-json"


class DataCiteXmlRenderer(_ExportRenderer):
    media_type, format = "application/vnd.datacite.datacite+xml", "datacite-xml"


class BibtexRenderer(_ExportRenderer):
    media_type, format = "application/x-bibtex", "bibtex"


class RisRenderer(_ExportRenderer):
    media_type, format = "application/x-research-info-systems", "ris"


class CslJsonRenderer(_ExportRenderer):
    media_type, format = "application/vnd.citationstyles.csl+json", "csl"


class BibliographyRenderer(_ExportRenderer):
    media_type, format = "text/x-bibliography", "citation"


class JsonLdRenderer(_ExportRenderer):
    media_type, format = "application/ld+json", "jsonld"


CITATION_RENDERERS = [JSONRenderer, DataCiteJsonRenderer, DataCiteXmlRenderer, BibtexRenderer, RisRenderer,
                      CslJsonRenderer, BibliographyRenderer, JsonLdRenderer]


def _style(request) -> str:
    """`?style=` or the Accept header's `style` parameter (`text/x-bibliography; style=apa`), as doi.org takes."""
    style = request.query_params.get("style", "")
    media_type = request.accepted_media_type or ""
    if not style and "style=" in media_type:
        style = media_type.split("style=", 1)[1].split(";")[0]
    return style.strip().strip('"')[:MAX_STYLE_LENGTH] or "apa"


def render_export(request, version) -> str | dict | None:
    """The body for the negotiated export format, or None when our own JSON was asked for."""
    renderer = type(request.accepted_renderer)
    if renderer is DataCiteJsonRenderer:
        return version_datacite_metadata(version)
    if renderer is DataCiteXmlRenderer:
        return datacite_xml(version_datacite_metadata(version))
    if renderer is BibtexRenderer:
        return version_bibtex(version)
    if renderer is RisRenderer:
        return version_ris(version)
    if renderer is CslJsonRenderer:
        return version_csl_json(version)
    if renderer is JsonLdRenderer:
        return version_jsonld(version)
    if renderer is BibliographyRenderer:
        style = _style(request)
        try:
            return version_citation(version, style, fmt="text")
        except ValueError as exc:
            raise InvalidInput(f"Unknown citation style '{style}'; use a CSL style name such as apa, ieee or "
                               "chicago-author-date.", field_errors={"style": [str(exc)]}) from exc
    return None
