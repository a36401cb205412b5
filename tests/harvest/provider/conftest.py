"""Asking /oai and checking every answer against the official schemas; versions made with the real services.

The schemas are the official copies in ../shared/schemas beside the project (see its README). One combined
schema imports OAI-PMH.xsd, oai_dc.xsd, oai-identifier.xsd and DataCite 4.5, because OAI-PMH.xsd validates the
content of <metadata> and <description> strictly: a payload is checked against its own schema as part of the
response. Schema imports are resolved from that folder only; a reference to anything else fails the test instead
of reaching the network.
"""

import copy
import datetime
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from django.test import Client
from lxml import etree

from repository.models import Version
from tests.factories import UserFactory, published_version

SCHEMAS = Path(__file__).resolve().parents[3].parent / "shared" / "schemas"

OAI = "http://www.openarchives.org/OAI/2.0/"
NS = {"oai": OAI, "oai_dc": "http://www.openarchives.org/OAI/2.0/oai_dc/", "dc": "http://purl.org/dc/elements/1.1/",
      "datacite": "http://datacite.org/schema/kernel-4",
      "id": "http://www.openarchives.org/OAI/2.0/oai-identifier"}
NAMESPACE = "archive.example.org"


class LocalSchemas(etree.Resolver):
    """Maps the official URL of a schema to the copy in shared/schemas; refuses every other remote URL."""

    def resolve(self, url, public_id, context):
        parts = urlsplit(url)
        if parts.scheme in ("http", "https"):
            local = SCHEMAS / Path(parts.path).name
            if not local.is_file():
                raise AssertionError(f"A schema imports {url}, which has no local copy in {SCHEMAS}.")
            return self.resolve_filename(str(local), context)
        return None


def load_schema(wrapper: str) -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(LocalSchemas())
    return etree.XMLSchema(etree.fromstring(wrapper.encode(), parser, base_url=str(SCHEMAS / "combined.xsd")))


def _imports(*pairs: tuple[str, str]) -> str:
    lines = "".join(f'<xs:import namespace="{ns}" schemaLocation="{location}"/>' for ns, location in pairs)
    return f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">{lines}</xs:schema>'


@pytest.fixture(scope="session")
def schemas():
    """(OAI-PMH with every payload schema, oai_dc alone, DataCite 4.5 alone)."""
    if not (SCHEMAS / "OAI-PMH.xsd").is_file():
        pytest.skip(f"The official schemas are not at {SCHEMAS} (the shared/schemas folder beside the project).")
    combined = load_schema(_imports((OAI, "OAI-PMH.xsd"), (NS["oai_dc"], "oai_dc.xsd"),
                                    (NS["id"], "oai-identifier.xsd"),
                                    (NS["datacite"], "datacite-4.5/metadata.xsd")))
    oai_dc = load_schema(_imports((NS["oai_dc"], "oai_dc.xsd")))
    datacite = load_schema(_imports((NS["datacite"], "datacite-4.5/metadata.xsd")))
    return combined, oai_dc, datacite


@dataclass
class OAIResponse:
    root: etree._Element

    def find(self, path: str):
        return self.root.find(path, NS)

    def findall(self, path: str) -> list:
        return self.root.findall(path, NS)

    def text(self, path: str) -> str | None:
        element = self.find(path)
        return None if element is None else element.text

    @property
    def request(self) -> etree._Element:
        return self.find("oai:request")

    @property
    def errors(self) -> list[tuple[str, str]]:
        return [(e.get("code"), e.text) for e in self.findall("oai:error")]

    @property
    def identifiers(self) -> list[str]:
        return [e.text for e in self.findall(".//oai:header/oai:identifier")]

    @property
    def token(self):
        return self.find(".//oai:resumptionToken")


@pytest.fixture
def oai(db, schemas):
    """oai(verb=..., **arguments) or oai(query="verb=...&...") -> OAIResponse, checked against OAI-PMH.xsd.

    `from_` stands for `from`; method="post" sends the arguments as a form, as harvesters may.
    """
    combined, oai_dc_schema, datacite_schema = schemas
    client = Client()

    def ask(query: str | None = None, method: str = "get", **arguments) -> OAIResponse:
        arguments = {name.rstrip("_"): value for name, value in arguments.items()}
        if method == "post":
            response = client.post("/oai", query if query is not None else urlencode(arguments),
                                   content_type="application/x-www-form-urlencoded")
        elif query is not None:
            response = client.get(f"/oai?{query}")
        else:
            response = client.get("/oai", arguments)
        assert response.status_code == 200
        assert response["Content-Type"] == "text/xml; charset=utf-8"
        root = etree.fromstring(response.content)
        assert combined.validate(root), combined.error_log
        for payload in root.findall(".//oai:metadata/oai_dc:dc", NS):
            assert oai_dc_schema.validate(copy.deepcopy(payload)), oai_dc_schema.error_log
        for payload in root.findall(".//oai:metadata/datacite:resource", NS):
            assert datacite_schema.validate(copy.deepcopy(payload)), datacite_schema.error_log
        return OAIResponse(root)

    return ask


@pytest.fixture(autouse=True)
def oai_settings(settings):
    settings.SITE_URL = f"https://{NAMESPACE}"
    settings.OAI_IDENTIFIER_NAMESPACE = ""  # the host of SITE_URL
    settings.OAI_REPOSITORY_NAME = "nbarchive (tests)"
    settings.OAI_ADMIN_EMAIL = ["oai@archive.example.org", "curator@archive.example.org"]
    settings.OAI_PAGE_SIZE = 100
    return settings


@pytest.fixture
def moderator(db):
    return UserFactory(username="oai-moderator", is_staff=True, is_superuser=True)


@pytest.fixture
def publish(user, moderator):
    """publish(at=None, **metadata) -> a version published through the real services, optionally dated `at`."""

    def make(at: datetime.datetime | None = None, **metadata) -> Version:
        version = published_version(user, moderator, **metadata)
        if at is not None:
            set_datestamp(version, at)
        return version

    return make


def set_datestamp(version: Version, at: datetime.datetime) -> Version:
    """Place a version in time (what harvesters see as its last change), as if it had changed then."""
    Version.objects.filter(pk=version.pk).update(public_changed_at=at)
    version.refresh_from_db()
    return version


def oai_id(version: Version) -> str:
    return f"oai:{NAMESPACE}:{version.record.public_id}/v{version.number}"
