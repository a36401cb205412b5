"""The reproducibility badge for READMEs: `/records/<id>/badge.svg` (the latest version) and
`/records/<id>/versions/<n>/badge.svg`, a flat shields.io-style SVG saying the last verdict and when.

The badge is static SVG built from escaped text (no script, no external reference) and served with a CSP that
forbids script anyway, `nosniff`, and a short public cache lifetime, as Binder's and shields' badges are: a
README shows a re-verification's result within minutes. An ETag lets GitHub's image proxy revalidate cheaply.
"""

import hashlib
import html

from django.conf import settings
from django.http import HttpResponse, HttpResponseNotModified
from django.urls import reverse
from django.views.decorators.http import require_safe

from repository import selectors
from repository.errors import NotFound
from repository.exports import record_landing_url
from repository.models import ExecutionRun, Verdict, Version
from repository.services.reverification import verification_history

LABEL = "reproducibility"
COLOURS = {
    Verdict.REPRODUCED: "#2ea44f",
    Verdict.REPRODUCED_WITH_DIFFERENCES: "#dfb317",
}
FAILED_COLOUR = "#e05d44"
GREY = "#9f9f9f"
CACHE_CONTROL = "public, max-age=300"
SVG_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
    "X-Content-Type-Options": "nosniff",
    "Access-Control-Allow-Origin": "*",
}


def badge_text(run: ExecutionRun | None, version: Version | None,
               latest_result: ExecutionRun | None = None) -> tuple[str, str]:
    """The right half of the badge and its colour. `latest_result`: the newest run that says something, when it is
    a re-verification that could not re-run the image (gone from its registry): the badge says so, not the older
    verdict."""
    if version is None:
        return "no such record", GREY
    if version.state == Version.State.WITHDRAWN:
        return "withdrawn", GREY
    if latest_result is not None and latest_result.status == ExecutionRun.Status.ERROR and latest_result.finished_at:
        return f"not reproducible {latest_result.finished_at:%Y-%m-%d}", FAILED_COLOUR
    if run is None:
        return "not verified", GREY
    date = run.finished_at.strftime("%Y-%m-%d") if run.finished_at else ""
    return f"{run.get_verdict_display().lower()} {date}".strip(), COLOURS.get(run.verdict, FAILED_COLOUR)


def _width(text: str) -> int:
    # Verdana 11px averages about 6.5 px a character (what shields measures); 10 px of padding on each side.
    return int(len(text) * 6.5) + 20


def badge_svg(message: str, colour: str) -> str:
    label, message = html.escape(LABEL), html.escape(message)
    left, right = _width(LABEL), _width(message)
    total = left + right
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" '
        f'aria-label="{label}: {message}"><title>{label}: {message}</title>'
        '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/>'
        '<stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{total}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{left}" height="20" fill="#555"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{colour}"/>'
        f'<rect width="{total}" height="20" fill="url(#s)"/></g>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="{left / 2}" y="15" fill="#010101" fill-opacity=".3">{label}</text>'
        f'<text x="{left / 2}" y="14">{label}</text>'
        f'<text x="{left + right / 2}" y="15" fill="#010101" fill-opacity=".3">{message}</text>'
        f'<text x="{left + right / 2}" y="14">{message}</text></g></svg>'
    )


@require_safe
def record_badge(request, record_id, number=None):
    try:
        version, _ = selectors.version_get_public(record_id=record_id, number=number)
    except NotFound:
        # Still a picture: a README keeps showing something sensible for a mistyped or removed record.
        version = None
    history = verification_history(version) if version is not None else None
    svg = badge_svg(*badge_text(history.latest if history else None, version,
                                history.latest_result if history else None))
    etag = '"' + hashlib.sha256(svg.encode()).hexdigest()[:32] + '"'
    if etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]:
        response = HttpResponseNotModified()
    else:
        response = HttpResponse(svg, content_type="image/svg+xml; charset=utf-8",
                                status=404 if version is None else 200)
    response["ETag"] = etag
    response["Cache-Control"] = CACHE_CONTROL
    for header, value in SVG_HEADERS.items():
        response[header] = value
    return response


def badge_snippets(version: Version) -> dict:
    """The Markdown and HTML a README embeds: the record's badge (it follows new versions), linking to the
    record's landing page; absolute URLs on SITE_URL, as the DOIs resolve to, whatever host served this page."""
    record_id = version.record.public_id
    image = settings.SITE_URL + reverse("repository:record_badge", kwargs={"record_id": record_id})
    target = record_landing_url(version.record)
    return {
        "image_url": image,
        "markdown": f"[![Reproducibility]({image})]({target})",
        "html": f'<a href="{html.escape(target)}"><img src="{html.escape(image)}" alt="Reproducibility"></a>',
    }
