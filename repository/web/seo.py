"""What crawlers read first: `/robots.txt` and the sitemaps (https://www.sitemaps.org/protocol.html).

`/sitemap.xml` is a sitemap index pointing at two series of sitemaps, one for the record (concept) pages
`/records/<id>/` and one for the version pages `/records/<id>/versions/<n>/`. Listed are the public pages that
are not tombstones: each accepted version not withdrawn (published, or publishing: its page exists while the DOI is
being registered) and each record with such a version. `lastmod` is when what harvesters see last changed
(`public_changed_at`; for a record page the latest change to any of its versions, a withdrawal included).

Sitemap page `n` of a series holds the rows whose primary key is in [(n-1)*SITEMAP_PAGE_SIZE + 1,
n*SITEMAP_PAGE_SIZE]: a range scan of the primary key, as fast for the last page as for the first, and at most
SITEMAP_PAGE_SIZE entries (the protocol allows 50,000), fewer where keys belong to drafts or were deleted. The
index needs only each table's largest key, so it answers in constant time at millions of rows; it lists every
page up to that key, some of which may be empty. This is rendered here rather than with django.contrib.sitemaps,
whose paginator counts and offsets the rows.
"""

import datetime
from xml.sax.saxutils import escape

from django.conf import settings
from django.db.models import Exists, Max, OuterRef
from django.http import Http404, HttpResponse
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_safe

from repository.models import Record, Version

SITEMAP_PAGE_SIZE = 10_000
# Primary keys are BigAutoField: a signed 64-bit integer in PostgreSQL and SQLite alike.
LARGEST_PRIMARY_KEY = 2**63 - 1
SITEMAP_NAMESPACE = "http://www.sitemaps.org/schemas/sitemap/0.9"
# Crawlers fetch these often; the lists change at the pace of moderation, so an hour's delay is harmless.
SITEMAP_MAX_AGE = 3600
LISTED_STATES = (Version.State.PUBLISHING, Version.State.PUBLISHED)

# Allowed: the landing pages (with their content negotiation and linksets) and the published files, which
# citation_pdf_url and the Signposting `item` links point at. Disallowed: everything behind a login, and the API
# (the landing pages carry the same metadata inline). The OAI-PMH endpoint is left to harvesters, which do not
# read robots.txt; no page links to it.
ROBOTS_DISALLOW = ("/api/", "/uploads/", "/requests/", "/account/", "/accounts/", "/admin/", "/runs/",
                   "/records/*/versions/new/", "/records/*/edit/", "/records/*/withdraw/",
                   # Share links and what they open, and the owners' access pages (repository/access/urls.py).
                   "/access/", "/records/*/access/")


@require_safe
def robots_txt(request):
    lines = ["User-agent: *", *(f"Disallow: {path}" for path in ROBOTS_DISALLOW), "Allow: /records/", "",
             f"Sitemap: {settings.SITE_URL}{reverse('repository:sitemap_index')}", ""]
    return HttpResponse("\n".join(lines), content_type="text/plain; charset=utf-8")


@require_safe
def sitemap_index(request):
    series = (("repository:sitemap_records", Record), ("repository:sitemap_versions", Version))
    locations = []
    for url_name, model in series:
        largest = model.objects.aggregate(largest=Max("pk"))["largest"] or 0
        # Pages up to the largest key, rounded up; at least one, as a sitemap index may not be empty.
        pages = max(1, -(-largest // SITEMAP_PAGE_SIZE))
        locations += [f"{settings.SITE_URL}{reverse(url_name, kwargs={'page': page})}"
                      for page in range(1, pages + 1)]
    entries = "".join(f"<sitemap><loc>{escape(location)}</loc></sitemap>\n" for location in locations)
    return _xml_response(f'<sitemapindex xmlns="{SITEMAP_NAMESPACE}">\n{entries}</sitemapindex>\n')


@require_safe
def sitemap_records(request, page: int):
    listed = Version.objects.filter(record=OuterRef("pk"), state__in=LISTED_STATES)
    rows = (Record.objects.filter(Exists(listed), pk__range=_key_range(page))
            .annotate(lastmod=Max("versions__public_changed_at"))
            .order_by("pk").values_list("public_id", "lastmod"))
    return _urlset((reverse("repository:record_landing", kwargs={"record_id": public_id}), lastmod)
                   for public_id, lastmod in rows)


@require_safe
def sitemap_versions(request, page: int):
    rows = (Version.objects.filter(pk__range=_key_range(page), state__in=LISTED_STATES)
            .order_by("pk").values_list("record__public_id", "number", "public_changed_at"))
    return _urlset((reverse("repository:version_landing", kwargs={"record_id": public_id, "number": number}),
                    lastmod) for public_id, number, lastmod in rows)


def _key_range(page: int) -> tuple[int, int]:
    if page < 1:
        raise Http404("Sitemap pages are numbered from 1.")
    if (page - 1) * SITEMAP_PAGE_SIZE >= LARGEST_PRIMARY_KEY:  # past any key: no rows, and no int the database takes
        raise Http404("There is no sitemap page this far.")
    return (page - 1) * SITEMAP_PAGE_SIZE + 1, page * SITEMAP_PAGE_SIZE


def _urlset(entries) -> HttpResponse:
    lines = [f'<urlset xmlns="{SITEMAP_NAMESPACE}">']
    for path, lastmod in entries:
        modified = (f"<lastmod>{lastmod.astimezone(datetime.UTC).isoformat(timespec='seconds')}</lastmod>"
                    if lastmod else "")
        lines.append(f"<url><loc>{escape(settings.SITE_URL + path)}</loc>{modified}</url>")
    lines.append("</urlset>\n")
    return _xml_response("\n".join(lines))


def _xml_response(body: str) -> HttpResponse:
    response = HttpResponse('<?xml version="1.0" encoding="UTF-8"?>\n' + body,
                            content_type="application/xml; charset=utf-8")
    patch_cache_control(response, public=True, max_age=SITEMAP_MAX_AGE)
    return response
