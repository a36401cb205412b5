"""FAIR Signposting (https://signposting.org/FAIR/) of landing pages: their typed links as data, rendered as an
HTTP `Link` header (RFC 8288) and as a linkset (RFC 9264) in `application/linkset+json` and `application/linkset`.

The links of a landing page (its URL is the anchor):
- `cite-as`: the DOI URL that resolves to the page (the version DOI on a version page, the concept DOI on
  `/records/<id>/`);
- `describedby`: the JSON-LD (the page's own content negotiation, `?format=jsonld`), DataCite XML and DataCite
  JSON. A version's DataCite metadata is the API's (`/api/records/<id>/versions/<n>?format=...`); the concept's is
  the record page's own content negotiation, because the API's `/api/records/<id>` is the latest *version*;
- `type`: the schema.org type (SoftwareSourceCode or Dataset) and https://schema.org/AboutPage;
- `license` (the SPDX URL), `author` (one per ORCID iD), `item` (one per file, with its media type);
- `linkset`: the same links as a linkset document, in both formats.
A tombstone (a withdrawn version) has `cite-as` and `describedby` only: the DOI still resolves to it and its
metadata is still served, but the page no longer presents the work, and its files are gone. A version whose files
are closed (embargoed, restricted; repository/exports/access.py) has no `item` links: its metadata is public, its
files are not, and a crawler following `item` would only meet refusals.

The `Link` header is capped, because proxies refuse responses with large headers (nginx: 4 or 8 KB for all the
headers, by default): it carries at most MAX_HEADER_LINKS_PER_RELATION `item` and `author` links, and stops adding
them at MAX_HEADER_BYTES. The linkset always carries every link, so a client that needs all files reads it.
In the linkset, each metadata document also `describes` the page and each file points back to it as `collection`
(Signposting level 2), the relation file downloads carry in their own `Link` header.
"""

from collections import Counter
from dataclasses import dataclass

from django.conf import settings
from django.urls import reverse
from django.utils.encoding import iri_to_uri

from repository.exports import doi_url, record_landing_url, version_landing_url
from repository.exports.access import files_linkable
from repository.exports.jsonld import file_download_url, file_media_type, schema_type
from repository.models import Version

JSONLD = "application/ld+json"
DATACITE_XML = "application/vnd.datacite.datacite+xml"
DATACITE_JSON = "application/vnd.datacite.datacite+json"
LINKSET_JSON = "application/linkset+json"
LINKSET = "application/linkset"
HTML = "text/html"

# The `?format=` values of each metadata format, in the API's and the landing pages' content negotiation.
METADATA_FORMATS = ((JSONLD, "jsonld"), (DATACITE_XML, "datacite-xml"), (DATACITE_JSON, "datacite-json"))
# The `?format=` value of each linkset format.
LINKSET_FORMATS = {LINKSET_JSON: "json", LINKSET: "linkset"}

MAX_HEADER_LINKS_PER_RELATION = 50
MAX_HEADER_BYTES = 3000
# The relations there may be many of; the others (a handful) are always in the header.
CAPPED_RELATIONS = ("author", "item")


@dataclass(frozen=True)
class Link:
    """One typed link from the landing page: its target, relation type and the target's media type."""

    href: str
    rel: str
    type: str = ""


@dataclass(frozen=True)
class Signposts:
    """The typed links of one landing page (the anchor)."""

    anchor: str
    links: tuple[Link, ...]


def version_signposts(version: Version) -> Signposts:
    """The links of the version's landing page, `/records/<id>/versions/<n>/`."""
    anchor = version_landing_url(version)
    kwargs = {"record_id": version.record.public_id, "number": version.number}
    api_url = f"{settings.SITE_URL}{reverse('api:record_version', kwargs=kwargs)}"
    metadata = {JSONLD: f"{anchor}?format=jsonld",
                DATACITE_XML: f"{api_url}?format=datacite-xml",
                DATACITE_JSON: f"{api_url}?format=datacite-json"}
    linkset = f"{settings.SITE_URL}{reverse('repository:version_linkset', kwargs=kwargs)}"
    return _signposts(version, anchor=anchor, doi=version.doi, metadata=metadata, linkset=linkset)


def concept_signposts(record, latest: Version) -> Signposts:
    """The links of the record's landing page, `/records/<id>/`, which shows `latest` under the concept DOI."""
    anchor = record_landing_url(record)
    metadata = {media_type: f"{anchor}?format={fmt}" for media_type, fmt in METADATA_FORMATS}
    linkset = f"{settings.SITE_URL}{reverse('repository:record_linkset', kwargs={'record_id': record.public_id})}"
    return _signposts(latest, anchor=anchor, doi=record.concept_doi, metadata=metadata, linkset=linkset)


def link_header(signposts: Signposts) -> str:
    """The value of the landing page's `Link` header (capped, see the module docstring)."""
    return ", ".join(_link_value(link) for link in _capped(signposts.links, max_bytes=MAX_HEADER_BYTES))


def head_links(signposts: Signposts) -> list[Link]:
    """The links for `<link>` elements in the page's head (for readers of the HTML only): the header's, capped
    by number but not by size."""
    return _capped(signposts.links, max_bytes=None)


def collection_link_header(version: Version) -> str:
    """The `Link` header of a file download: the landing page of the version the file belongs to."""
    return _link_value(Link(version_landing_url(version), "collection", HTML))


def linkset_json(signposts: Signposts) -> dict:
    """The RFC 9264 `application/linkset+json` document: one context object per anchor, relation types as
    members, each an array of target objects."""
    contexts = []
    for anchor, links in _contexts(signposts):
        context = {"anchor": anchor}
        for link in links:
            target = {"href": link.href, **({"type": link.type} if link.type else {})}
            context.setdefault(link.rel, []).append(target)
        contexts.append(context)
    return {"linkset": contexts}


def linkset_text(signposts: Signposts) -> str:
    """The RFC 9264 `application/linkset` document: every link with its `anchor`, one per line."""
    return ",\n".join(_link_value(link, anchor=anchor) for anchor, links in _contexts(signposts)
                      for link in links) + "\n"


# --- the parts ----------------------------------------------------------------------------------------------


def _signposts(version: Version, *, anchor: str, doi: str, metadata: dict[str, str], linkset: str) -> Signposts:
    links = [Link(doi_url(doi), "cite-as")] if doi else []
    links += [Link(href, "describedby", media_type) for media_type, href in metadata.items()]
    if version.state == Version.State.WITHDRAWN:
        return _signposts_of(anchor, links)
    links += [Link(f"https://schema.org/{schema_type(version)}", "type"), Link("https://schema.org/AboutPage", "type")]
    if version.license:
        links.append(Link(f"https://spdx.org/licenses/{version.license}", "license"))
    links += [Link(linkset, "linkset", LINKSET_JSON),
              Link(f"{linkset}?format={LINKSET_FORMATS[LINKSET]}", "linkset", LINKSET)]
    links += [Link(f"https://orcid.org/{creator.orcid}", "author") for creator in version.creators.all()
              if creator.orcid]
    if files_linkable(version):
        links += [Link(file_download_url(version, f.path), "item",
                       file_media_type(f.path) or "application/octet-stream")
                  for f in sorted(version.files.all(), key=lambda f: f.path)]
    return _signposts_of(anchor, links)


def _signposts_of(anchor: str, links: list[Link]) -> Signposts:
    unique = dict.fromkeys(Link(iri_to_uri(link.href), link.rel, link.type) for link in links)
    return Signposts(iri_to_uri(anchor), tuple(unique))


def _contexts(signposts: Signposts) -> list[tuple[str, list[Link]]]:
    """The linkset: the page's links (but the link to the linkset itself), then the way back to the page from
    each metadata document (`describes`) and each file (`collection`)."""
    page = [link for link in signposts.links if link.rel != "linkset"]
    contexts = [(signposts.anchor, page)]
    contexts += [(link.href, [Link(signposts.anchor, "describes", HTML)]) for link in page
                 if link.rel == "describedby"]
    contexts += [(link.href, [Link(signposts.anchor, "collection", HTML)]) for link in page if link.rel == "item"]
    return contexts


def _capped(links, *, max_bytes: int | None) -> list[Link]:
    kept, size, counts = [], 0, Counter()
    for link in links:
        length = len(_link_value(link)) + 2
        if link.rel in CAPPED_RELATIONS:
            if counts[link.rel] >= MAX_HEADER_LINKS_PER_RELATION or (max_bytes and size + length > max_bytes):
                continue
            counts[link.rel] += 1
        kept.append(link)
        size += length
    return kept


def _link_value(link: Link, *, anchor: str = "") -> str:
    """One link-value of RFC 8288. Targets are URIs (iri_to_uri escapes `<`, `>`, `"` and spaces) and the
    parameter values are our own media types, so nothing needs quoting beyond the quotes themselves."""
    value = f'<{link.href}>; rel="{link.rel}"'
    if link.type:
        value += f'; type="{link.type}"'
    if anchor:
        value += f'; anchor="{anchor}"'
    return value
