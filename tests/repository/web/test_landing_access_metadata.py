"""What crawlers read of a landing page whose files are closed: the metadata in full, the access said, and no
link to a file (no citation_pdf_url, no Signposting `item`, no JSON-LD contentUrl); the sitemap lists pages only.

Versions go through the real publishing flow, their access set on the draft as the deposit form would."""

import datetime
import json

import pytest
from django.conf import settings
from django.urls import reverse

from repository.models import FileAccess, Version
from tests.factories import UserFactory, accept, demo_draft, sync_pending, upload

from .test_landing_metadata import Head, parse_header_links, sitemap_locations

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n% the paper\n"
EMBARGO_END = datetime.date(2031, 3, 1)
ACCESS = {"open": (FileAccess.OPEN, None), "embargoed": (FileAccess.EMBARGOED, EMBARGO_END),
          "restricted": (FileAccess.RESTRICTED, None)}


@pytest.fixture(autouse=True)
def local_registrar(settings):
    settings.DOI_PROVIDER = "local"


@pytest.fixture
def publish_with(user):
    """publish_with(state) -> a published notebook with a PDF, its files open, embargoed or restricted."""
    moderator = UserFactory(is_superuser=True, is_staff=True)

    def make(state: str) -> Version:
        draft = demo_draft(user, title=f"Thermal expansion ({state})")
        upload(draft, user, "paper.pdf", PDF)
        access, embargo_until = ACCESS[state]
        Version.objects.filter(pk=draft.pk).update(access_files=access, embargo_until=embargo_until)
        version = accept(draft, moderator)
        sync_pending()
        version.refresh_from_db()
        assert version.state == Version.State.PUBLISHED
        return version
    return make


def landing(version: Version) -> str:
    return reverse("repository:version_landing", kwargs={"record_id": version.record.public_id,
                                                         "number": version.number})


def files_prefix(version: Version) -> str:
    return f"/records/{version.record.public_id}/versions/{version.number}/files/"


def test_an_open_landing_page_links_its_files(client, publish_with):
    """The other side of the tests below, so that they cannot pass by linking nothing at all."""
    version = publish_with("open")
    response = client.get(landing(version))
    head = Head(response.content.decode())
    assert head.values("citation_pdf_url") == [f"{settings.SITE_URL}{files_prefix(version)}paper.pdf"]
    assert "item" in {link["rel"] for link in parse_header_links(response["Link"])}
    assert head.document()["isAccessibleForFree"] is True


@pytest.mark.parametrize("state", ["embargoed", "restricted"])
def test_a_closed_landing_page_links_no_file_anywhere_a_crawler_reads(client, publish_with, state):
    version = publish_with(state)
    response = client.get(landing(version))
    head = Head(response.content.decode())

    assert head.values("citation_title") == [f"Thermal expansion ({state})"]  # the metadata are all there
    assert head.values("citation_pdf_url") == []
    assert head.values("DC.rights")[-1] == f"info:eu-repo/semantics/{state}Access"
    # An embargo's end is for harvesters, not a date reference managers should take for the work's.
    assert head.values("DC.date") == [version.published_at.astimezone(datetime.UTC).date().isoformat()]
    links = parse_header_links(response["Link"])
    assert "item" not in {link["rel"] for link in links} and {"cite-as", "describedby"} <= {
        link["rel"] for link in links}
    document = head.document()
    assert document["isAccessibleForFree"] is False
    assert "associatedMedia" not in document

    record_page = f"/records/{version.record.public_id}/"
    for path in (f"{landing(version)}?format=jsonld", f"{record_page}?format=jsonld",
                 f"{landing(version)}?format=datacite-xml", f"{record_page}?format=datacite-json",
                 reverse("repository:version_linkset", kwargs={"record_id": version.record.public_id,
                                                               "number": version.number}),
                 reverse("repository:record_linkset", kwargs={"record_id": version.record.public_id})):
        body = client.get(path)
        assert body.status_code == 200, path
        assert files_prefix(version) not in body.content.decode(), path
    for page in (landing(version), record_page):
        page_response = client.get(page)
        assert files_prefix(version) not in page_response["Link"]
        assert files_prefix(version) not in json.dumps(Head(page_response.content.decode()).document())


def test_the_sitemap_lists_landing_pages_only_whatever_the_access(client, publish_with):
    versions = [publish_with(state) for state in ACCESS]

    found = sitemap_locations(client)

    assert len(found) == 2 * len(versions)  # each version's page and its record's page
    for version in versions:
        assert f"{settings.SITE_URL}{landing(version)}" in found
    assert not [url for url in found if "/files/" in url or url.endswith((".pdf", ".ipynb", ".zip"))]
