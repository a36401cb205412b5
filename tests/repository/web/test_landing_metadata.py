"""What harvesters, crawlers and reference managers read from landing pages: the meta tags and JSON-LD of the
head, the FAIR Signposting links and linksets, content negotiation, the sitemap and robots.txt.

Versions go through the real publishing flow (acceptance, then the DOI sync against the embedded registrar).
"""

import datetime
import hashlib
import json
import re
from html.parser import HTMLParser

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from lxml import etree

from repository.exports import signposting
from repository.models import Version
from repository.services.new_versions import version_new_draft
from repository.services.published import version_withdraw
from repository.web import seo
from tests.factories import UserFactory, accept, add_file, demo_draft, published_version, sync_pending

pytestmark = pytest.mark.django_db

ORCID = "0000-0002-1825-0097"
CREATORS = [
    {"name": "Doe, Jane", "given_name": "Jane", "family_name": "Doe", "orcid": ORCID,
     "affiliation": "University of Example", "affiliation_ror": "02mhbdp94"},
    {"name": "van der Berg, Anna"},
    {"name": "CERN"},
]
HOSTILE = """</script><script>alert(1)</script> "quoted" & 'single' <!-- -->"""
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture(autouse=True)
def local_registrar(settings):
    settings.DOI_PROVIDER = "local"


@pytest.fixture
def admin(db):
    return UserFactory(is_superuser=True, is_staff=True)


@pytest.fixture
def published(user, admin) -> Version:
    return published_version(user, admin, title="Thermal expansion of copper", description="We measure it.",
                             keywords=["thermal expansion", "copper"], creators=CREATORS)


def version_url(version, number=None) -> str:
    return reverse("repository:version_landing", kwargs={"record_id": version.record.public_id,
                                                         "number": number or version.number})


def record_url(version) -> str:
    return reverse("repository:record_landing", kwargs={"record_id": version.record.public_id})


class Head(HTMLParser):
    """The <meta>, <link> and JSON-LD <script> elements of a page, as a crawler's parser sees them."""

    def __init__(self, html: str):
        super().__init__()
        self.meta, self.links, self.jsonld, self._in_jsonld = [], [], [], False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "meta" and "name" in attrs:
            self.meta.append((attrs["name"], attrs.get("content")))
        elif tag == "link":
            self.links.append((attrs.get("rel"), attrs.get("href"), attrs.get("type")))
        elif tag == "script" and attrs.get("type") == "application/ld+json":
            self._in_jsonld = True
            self.jsonld.append("")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_jsonld = False

    def handle_data(self, data):
        if self._in_jsonld:
            self.jsonld[-1] += data

    def values(self, name: str) -> list[str]:
        return [content for meta_name, content in self.meta if meta_name == name]

    def document(self) -> dict:
        assert len(self.jsonld) == 1
        return json.loads(self.jsonld[0])


# RFC 8288 link-values: <target>, then `; name=value` parameters with quoted or token values. (requests'
# parse_header_links is not enough: it drops a parameter whose quoted value holds "=", as anchors with a query do.)
LINK_VALUE = re.compile(r'<([^>]*)>((?:\s*;\s*[\w*-]+\s*=\s*(?:"[^"]*"|[^;,\s]*))*)')
LINK_PARAMETER = re.compile(r';\s*([\w*-]+)\s*=\s*(?:"([^"]*)"|([^;,\s]*))')


def parse_header_links(value: str) -> list[dict]:
    """The links of a Link header or an application/linkset document, as {"url": ..., "rel": ..., ...}."""
    assert LINK_VALUE.sub("", value).replace(",", "").strip() == "", f"not a list of link-values: {value!r}"
    return [{"url": match[1], **{name: quoted or token for name, quoted, token in LINK_PARAMETER.findall(match[2])}}
            for match in LINK_VALUE.finditer(value)]


def links(response) -> list[dict]:
    return parse_header_links(response["Link"])


def rels(response, rel: str) -> list[dict]:
    return [link for link in links(response) if link["rel"] == rel]


# --- The head ----------------------------------------------------------------------------------------------

def test_a_version_page_carries_dublin_core_and_highwire_tags(client, published):
    response = client.get(version_url(published))
    head = Head(response.content.decode())
    landing = settings.SITE_URL + version_url(published)
    doi = f"https://doi.org/{published.doi}"

    assert ("canonical", landing, None) in head.links
    assert ("schema.DC", "http://purl.org/dc/elements/1.1/", None) in head.links
    assert head.values("DC.title") == ["Thermal expansion of copper"]
    assert head.values("DC.creator") == ["Doe, Jane", "van der Berg, Anna", "CERN"]
    assert head.values("DC.identifier")[:2] == [doi, landing]
    assert head.values("DC.date") == [published.published_at.astimezone(datetime.UTC).date().isoformat()]
    assert head.values("DC.rights") == ["https://spdx.org/licenses/CC-BY-4.0", "info:eu-repo/semantics/openAccess"]
    assert head.values("DC.publisher") == [settings.DOI_PUBLISHER]
    assert head.values("DC.type") == ["Software", "ComputationalNotebook"]
    assert head.values("DC.subject") == ["thermal expansion", "copper"]
    assert head.values("DC.description") == ["We measure it."]
    assert f"https://doi.org/{published.record.concept_doi}" in head.values("DC.relation")

    assert head.values("citation_title") == ["Thermal expansion of copper"]
    assert head.values("citation_author") == ["Doe, Jane", "van der Berg, Anna", "CERN"]
    assert head.values("citation_author_orcid") == [f"https://orcid.org/{ORCID}"]
    assert head.values("citation_publication_date") == [published.published_at.strftime("%Y/%m/%d")]
    assert head.values("citation_doi") == [published.doi]
    assert head.values("citation_publisher") == [settings.DOI_PUBLISHER]
    assert head.values("citation_keywords") == ["thermal expansion", "copper"]
    assert head.values("citation_abstract_html_url") == [landing]
    assert head.values("citation_pdf_url") == []  # no PDF was deposited


def test_citation_pdf_url_points_at_a_deposited_pdf(client, published):
    add_file(published, "paper/preprint.pdf", b"%PDF-1.7 ...")

    head = Head(client.get(version_url(published)).content.decode())

    pdf_url = settings.SITE_URL + reverse("repository:published_file", kwargs={
        "record_id": published.record.public_id, "number": 1, "file_path": "paper/preprint.pdf"})
    assert head.values("citation_pdf_url") == [pdf_url]


def test_the_embedded_json_ld_describes_the_version_and_its_files(client, published):
    document = Head(client.get(version_url(published)).content.decode()).document()

    doi = f"https://doi.org/{published.doi}"
    assert document["@context"] == "https://schema.org" and document["@type"] == "SoftwareSourceCode"
    assert document["@id"] == doi and doi in document["identifier"]
    assert {"@type": "PropertyValue", "propertyID": "DOI", "value": published.doi, "url": doi} in document["identifier"]
    assert document["name"] == "Thermal expansion of copper"
    assert document["author"][0]["@id"] == f"https://orcid.org/{ORCID}"
    assert document["license"] == "https://spdx.org/licenses/CC-BY-4.0"
    assert document["isPartOf"]["@id"] == f"https://doi.org/{published.record.concept_doi}"
    assert document["programmingLanguage"]["name"] == "Python"
    files = {f.path: f.blob for f in published.files.select_related("blob")}
    assert {medium["name"] for medium in document["associatedMedia"]} == set(files)
    for medium in document["associatedMedia"]:
        download = client.get(medium["contentUrl"].removeprefix(settings.SITE_URL))
        content = b"".join(download.streaming_content)
        assert hashlib.sha256(content).hexdigest() == medium["sha256"] == files[medium["name"]].sha256
        assert medium["contentSize"] == f"{len(content)} B"
    notebook = next(m for m in document["associatedMedia"] if m["name"].endswith(".ipynb"))
    assert notebook["encodingFormat"] == "application/x-ipynb+json"


def test_a_hostile_title_cannot_leave_the_json_ld_script_or_the_meta_attributes(client, user, admin):
    version = published_version(user, admin, title=HOSTILE, description=HOSTILE,
                                creators=[{"name": HOSTILE}], keywords=[HOSTILE])
    html = client.get(version_url(version)).content.decode()
    head = Head(html)

    assert "<script>alert(1)" not in html
    # One JSON-LD script, closed where we closed it, and read back exactly as typed.
    assert len(head.jsonld) == 1 and html.count("</script>") == 2  # the JSON-LD and site.js
    document = head.document()
    assert document["name"] == HOSTILE and document["description"] == HOSTILE
    assert document["keywords"] == [HOSTILE] and document["author"][0]["name"] == HOSTILE
    # Every attribute was parsed back as the whole value: nothing was cut off or leaked into new attributes.
    assert head.values("DC.title") == [HOSTILE] and head.values("citation_title") == [HOSTILE]
    assert head.values("citation_keywords") == [HOSTILE] and head.values("DC.creator") == [HOSTILE]
    assert all(name.startswith(("DC.", "citation_", "viewport")) for name, _ in head.meta)


def test_the_landing_page_does_not_query_per_file(client, user, admin):
    few = published_version(user, admin)
    many = published_version(user, admin)
    for index in range(30):
        add_file(many, f"data/part-{index:02}.csv", f"{index}\n".encode())

    counts = []
    for version in (few, many):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(version_url(version)).status_code == 200
        counts.append(len(queries))

    assert counts[0] == counts[1]


# --- Signposting -------------------------------------------------------------------------------------------

def test_the_version_page_signposts_its_doi_metadata_files_authors_license_and_type(client, published):
    response = client.get(version_url(published))
    api = settings.SITE_URL + reverse("api:record_version", kwargs={"record_id": published.record.public_id,
                                                                    "number": 1})
    landing = settings.SITE_URL + version_url(published)

    assert [link["url"] for link in rels(response, "cite-as")] == [f"https://doi.org/{published.doi}"]
    describedby = {link["type"]: link["url"] for link in rels(response, "describedby")}
    assert describedby == {"application/ld+json": f"{landing}?format=jsonld",
                           "application/vnd.datacite.datacite+xml": f"{api}?format=datacite-xml",
                           "application/vnd.datacite.datacite+json": f"{api}?format=datacite-json"}
    assert {link["url"] for link in rels(response, "type")} == {"https://schema.org/SoftwareSourceCode",
                                                              "https://schema.org/AboutPage"}
    assert [link["url"] for link in rels(response, "license")] == ["https://spdx.org/licenses/CC-BY-4.0"]
    assert [link["url"] for link in rels(response, "author")] == [f"https://orcid.org/{ORCID}"]
    items = {link["url"]: link["type"] for link in rels(response, "item")}
    assert len(items) == published.files.count()
    assert "application/x-ipynb+json" in items.values() and "text/csv" in items.values()
    assert {link["type"] for link in rels(response, "linkset")} == {"application/linkset+json",
                                                                    "application/linkset"}

    # What the links point at is what they say it is.
    jsonld = client.get(describedby["application/ld+json"].removeprefix(settings.SITE_URL))
    assert jsonld["Content-Type"] == "application/ld+json" and jsonld.json()["@id"].endswith(published.doi)
    xml = client.get(describedby["application/vnd.datacite.datacite+xml"].removeprefix(settings.SITE_URL))
    assert etree.fromstring(xml.content).findtext("{*}identifier") == published.doi
    for url in items:
        assert client.get(url.removeprefix(settings.SITE_URL)).status_code == 200


def test_the_head_repeats_the_signposts_as_link_elements(client, published):
    head = Head(client.get(version_url(published)).content.decode())

    assert ("cite-as", f"https://doi.org/{published.doi}", None) in head.links
    assert any(rel == "describedby" and kind == "application/ld+json" for rel, _, kind in head.links)


def test_a_head_request_gets_the_links_too(client, published):
    response = client.head(version_url(published))

    assert response.status_code == 200 and rels(response, "cite-as")


def test_the_link_header_caps_the_files_and_the_linkset_lists_them_all(client, published):
    for index in range(signposting.MAX_HEADER_LINKS_PER_RELATION + 10):
        add_file(published, f"data/part-{index:03}.csv", f"{index}\n".encode())
    total = published.files.count()

    response = client.get(version_url(published))
    linkset = client.get(rels(response, "linkset")[0]["url"].removeprefix(settings.SITE_URL)).json()

    header_items = rels(response, "item")
    assert 0 < len(header_items) <= signposting.MAX_HEADER_LINKS_PER_RELATION < total
    assert len(response["Link"]) <= signposting.MAX_HEADER_BYTES
    assert len(linkset["linkset"][0]["item"]) == total
    assert rels(response, "cite-as") and rels(response, "linkset")  # never dropped for the files


def test_the_linkset_json_follows_rfc_9264(client, published):
    url = reverse("repository:version_linkset", kwargs={"record_id": published.record.public_id, "number": 1})
    landing = settings.SITE_URL + version_url(published)

    response = client.get(url)

    assert response["Content-Type"] == "application/linkset+json"
    contexts = {context["anchor"]: context for context in response.json()["linkset"]}
    page = contexts[landing]
    assert page["cite-as"] == [{"href": f"https://doi.org/{published.doi}"}]
    assert {"href": f"{landing}?format=jsonld", "type": "application/ld+json"} in page["describedby"]
    assert all(set(target) <= {"href", "type"} for targets in page.values() if isinstance(targets, list)
               for target in targets)
    assert "linkset" not in page
    for item in page["item"]:  # each file and each metadata document points back to the page
        assert contexts[item["href"]]["collection"] == [{"href": landing, "type": "text/html"}]
    for described in page["describedby"]:
        assert contexts[described["href"]]["describes"] == [{"href": landing, "type": "text/html"}]


@pytest.mark.parametrize("ask", [{"HTTP_ACCEPT": "application/linkset"}, {"QUERY_STRING": "format=linkset"}])
def test_the_linkset_is_also_served_as_application_linkset(client, published, ask):
    url = reverse("repository:version_linkset", kwargs={"record_id": published.record.public_id, "number": 1})
    landing = settings.SITE_URL + version_url(published)

    response = client.get(url, **ask)

    assert response["Content-Type"] == "application/linkset"
    parsed = parse_header_links(response.content.decode())
    assert {"url": f"https://doi.org/{published.doi}", "rel": "cite-as", "anchor": landing} in parsed
    assert all(link["anchor"] for link in parsed)


def test_file_downloads_point_back_to_their_landing_page(client, published):
    path = published.files.order_by("path").first().path
    response = client.get(reverse("repository:published_file", kwargs={
        "record_id": published.record.public_id, "number": 1, "file_path": path}))

    assert rels(response, "collection") == [{"url": settings.SITE_URL + version_url(published), "rel": "collection",
                                             "type": "text/html"}]


def test_the_record_page_is_the_concept_dois_landing_page(client, user, admin, published):
    second = accept(version_new_draft(record=published.record, actor=user), admin)
    sync_pending()
    record = published.record
    concept = f"https://doi.org/{record.concept_doi}"

    response = client.get(record_url(published))
    head = Head(response.content.decode())

    assert [link["url"] for link in rels(response, "cite-as")] == [concept]
    assert head.values("citation_doi") == [record.concept_doi]
    assert head.values("DC.identifier")[0] == concept
    assert ("canonical", settings.SITE_URL + record_url(published), None) in head.links
    document = head.document()
    assert document["@id"] == concept and "version" not in document
    assert [part["@id"] for part in document["hasPart"]] == [f"https://doi.org/{second.doi}",
                                                             f"https://doi.org/{published.doi}"]
    linkset = client.get(rels(response, "linkset")[0]["url"].removeprefix(settings.SITE_URL)).json()
    assert linkset["linkset"][0]["anchor"] == settings.SITE_URL + record_url(published)
    # The concept's DataCite metadata, which the API (whose record URL is the latest version) does not serve.
    describedby = {link["type"]: link["url"] for link in rels(response, "describedby")}
    xml = client.get(describedby["application/vnd.datacite.datacite+xml"].removeprefix(settings.SITE_URL))
    assert etree.fromstring(xml.content).findtext("{*}identifier") == record.concept_doi


def test_a_tombstone_signposts_only_its_doi_and_metadata(client, published, admin):
    version_withdraw(version=published, actor=admin, reason="Fabricated data.")

    response = client.get(version_url(published))
    head = Head(response.content.decode())

    assert response.status_code == 410
    assert {link["rel"] for link in links(response)} == {"cite-as", "describedby"}
    assert not head.jsonld and not [name for name, _ in head.meta if name.startswith(("DC.", "citation_"))]
    jsonld = client.get(version_url(published), HTTP_ACCEPT="application/ld+json")
    assert jsonld.status_code == 410
    document = jsonld.json()
    assert document["creativeWorkStatus"] == "Withdrawn" and "associatedMedia" not in document


# --- Content negotiation -----------------------------------------------------------------------------------

@pytest.mark.parametrize("ask", [{"HTTP_ACCEPT": "application/ld+json"}, {"QUERY_STRING": "format=jsonld"},
                                 {"HTTP_ACCEPT": "text/html;q=0.5, application/ld+json"}])
def test_a_version_page_answers_json_ld_when_asked(client, published, ask):
    response = client.get(version_url(published), **ask)

    assert response.status_code == 200 and response["Content-Type"] == "application/ld+json"
    assert "Accept" in response["Vary"]
    assert response.json()["identifier"][0] == f"https://doi.org/{published.doi}"
    assert rels(response, "cite-as")


@pytest.mark.parametrize("accept", [BROWSER_ACCEPT, "*/*", None, "application/x-unknown"])
def test_browsers_and_everyone_else_get_html(client, published, accept):
    response = client.get(record_url(published), **({"HTTP_ACCEPT": accept} if accept else {}))

    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    assert "Accept" in response["Vary"]


def test_the_record_page_answers_the_concepts_json_ld(client, published):
    response = client.get(record_url(published), HTTP_ACCEPT="application/ld+json")

    document = response.json()
    assert document["@id"] == f"https://doi.org/{published.record.concept_doi}"
    assert [part["@id"] for part in document["hasPart"]] == [f"https://doi.org/{published.doi}"]


@pytest.mark.parametrize("ask", [{"HTTP_ACCEPT": "application/ld+json"}, {"QUERY_STRING": "format=jsonld"}])
def test_the_api_negotiates_json_ld(client, published, ask):
    url = reverse("api:record_version", kwargs={"record_id": published.record.public_id, "number": 1})

    response = client.get(url, **ask)

    assert response.status_code == 200 and response["Content-Type"].startswith("application/ld+json")
    assert json.loads(response.content)["@id"] == f"https://doi.org/{published.doi}"


# --- Sitemap and robots.txt --------------------------------------------------------------------------------

def sitemap_locations(client) -> dict[str, str | None]:
    """Every <loc> of every sitemap the index lists, with its <lastmod>."""
    namespace = {"s": seo.SITEMAP_NAMESPACE}
    index = client.get("/sitemap.xml")
    assert index.status_code == 200 and index["Content-Type"].startswith("application/xml")
    found = {}
    for location in etree.fromstring(index.content).findall("s:sitemap/s:loc", namespace):
        assert location.text.startswith(settings.SITE_URL + "/sitemap-")  # at the root: may list any page
        sitemap = etree.fromstring(client.get(location.text.removeprefix(settings.SITE_URL)).content)
        for url in sitemap.findall("s:url", namespace):
            loc = url.findtext("s:loc", namespaces=namespace)
            assert loc not in found
            found[loc] = url.findtext("s:lastmod", namespaces=namespace)
    return found


def test_the_sitemap_lists_public_pages_but_no_draft_and_no_tombstone(client, user, admin, published):
    draft = demo_draft(user, title="Not yet")
    withdrawn = published_version(user, admin, title="Gone")
    version_withdraw(version=withdrawn, actor=admin, reason="Duplicate.")
    withdrawn.refresh_from_db()

    found = sitemap_locations(client)

    changed = published.public_changed_at.isoformat(timespec="seconds")
    assert found[settings.SITE_URL + version_url(published)] == changed
    assert found[settings.SITE_URL + record_url(published)] == changed
    assert settings.SITE_URL + record_url(draft) not in found
    assert settings.SITE_URL + version_url(withdrawn) not in found
    assert settings.SITE_URL + record_url(withdrawn) not in found
    assert len(found) == 2


def test_sitemap_pages_split_by_key_range_without_losing_a_page(client, user, admin, monkeypatch):
    monkeypatch.setattr(seo, "SITEMAP_PAGE_SIZE", 2)
    versions = [published_version(user, admin, title=f"Work {n}") for n in range(3)]
    versions.append(accept(version_new_draft(record=versions[0].record, actor=user), admin))  # publishing
    demo_draft(user, title="Draft in the middle")
    versions.append(published_version(user, admin, title="Last"))

    found = sitemap_locations(client)

    assert {settings.SITE_URL + version_url(v) for v in versions} <= set(found)
    assert len(found) == len(versions) + 4  # and one record page per published record
    assert client.get("/sitemap-versions-0.xml").status_code == 404


def test_robots_txt_points_at_the_sitemap_and_keeps_crawlers_out_of_private_pages(client):
    response = client.get("/robots.txt")
    text = response.content.decode()

    assert response["Content-Type"].startswith("text/plain")
    assert f"Sitemap: {settings.SITE_URL}/sitemap.xml" in text.splitlines()
    assert re.search(r"^Allow: /records/$", text, re.MULTILINE)
    for private in ("/api/", "/uploads/", "/requests/", "/account/", "/admin/"):
        assert f"Disallow: {private}" in text.splitlines()
