"""What a landing page offers a reader beyond the metadata: the rendered notebook with its headings, the public
reproducibility report behind the verdict, the README badge, the citation in a chosen style, the export files
and "Download all". Kept apart from landing.py, which builds the page and its machine-readable head."""

import re

from django.urls import reverse

from repository.exports.jsonld import related_url
from repository.models import Version, VersionFile
from repository.services.usage import usage_counts
from repository.web.badges import badge_snippets
from repository.web.citing import EXPORTS, STYLE_CHOICES, StyleError, chosen_style, citation_html
from repository.web.notebook import notebook_panel


def reader_context(request, version: Version, files: list[VersionFile], run, *,
                   files_readable: bool = True) -> tuple[dict, int]:
    """The landing page's reader parts, and its status: 400 when `?style=` names no citation style (the
    citation box then says so and shows APA). No notebook panel (frame, headings) when the reader may not read
    the files: its headings are the notebook's content."""
    kwargs = {"record_id": version.record.public_id, "number": version.number}
    status, style_error = 200, ""
    try:
        style = chosen_style(request)
        citation = citation_html(version, style)
    except StyleError as exc:
        status, style_error = 400, str(exc)
        style = next((v for v in reversed(request.GET.getlist("style")) if v.strip()), "")[:100]
        citation = citation_html(version, "apa")
    return {
        "citation": citation,
        "citation_style": style,
        "citation_style_error": style_error,
        "citation_styles": STYLE_CHOICES,
        "style_is_listed": style in dict(STYLE_CHOICES),
        "exports": [(label, reverse("repository:version_export", kwargs={**kwargs, "fmt": fmt}))
                    for fmt, (label, *_rest) in EXPORTS.items()],
        "download_all_url": reverse("repository:version_crate", kwargs=kwargs),
        "download_all_size": sum(f.blob.size for f in files),
        "notebook": notebook_panel(version, files) if files_readable else None,
        "run_report_url": reverse("repository:run_report", kwargs={"run_id": run.run_id}) if run else "",
        "badge": badge_snippets(version),
        "related": related_identifiers(version),
        "usage": usage_counts(version),
    }, status


def related_identifiers(version: Version) -> list[dict]:
    """The related identifiers as entered, each with its relation in words ("Is supplement to") and, where the
    scheme has a resolver, a link."""
    return [{"relation": re.sub(r"(?<!^)([A-Z])", lambda m: " " + m.group(1).lower(), related.relation),
             "scheme": related.scheme, "identifier": related.identifier,
             "url": related_url(related.scheme, related.identifier)}
            for related in version.related_identifiers.all()]
