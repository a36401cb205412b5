"""repository/exports/dublincore.py on its own: the element dict (reused by landing pages) and its XML."""

import copy

import pytest
from lxml import etree

from repository.exports.dublincore import dublin_core_xml, version_dublin_core

from .conftest import NAMESPACE

pytestmark = pytest.mark.django_db


def test_dublin_core_elements_of_a_version(publish):
    version = publish(title="Band gaps", description="", keywords=[], license="MIT", resource_type="Dataset",
                      creators=[{"name": "Doe, Jane"}, {"name": "Example Lab"}])

    elements = version_dublin_core(version)

    assert list(elements) == ["title", "creator", "publisher", "date", "type", "format", "identifier", "relation",
                              "rights"]  # empty description and subjects are left out, the DCMI order kept
    assert elements["creator"] == ["Doe, Jane", "Example Lab"]
    assert elements["type"] == ["Dataset"]
    assert elements["identifier"] == [f"https://doi.org/{version.doi}",
                                      f"https://{NAMESPACE}/records/{version.record.public_id}/versions/1/"]
    assert elements["rights"] == ["https://spdx.org/licenses/MIT", "info:eu-repo/semantics/openAccess"]


def test_dublin_core_xml_is_a_valid_oai_dc_document(publish, schemas):
    version = publish(description="Line one\nline two \x01 & <b>not markup</b>")
    _, oai_dc_schema, _ = schemas

    document = etree.fromstring(dublin_core_xml(version_dublin_core(version)).encode())

    assert oai_dc_schema.validate(copy.deepcopy(document)), oai_dc_schema.error_log
    description = document.findtext("{http://purl.org/dc/elements/1.1/}description")
    assert description == "Line one\nline two  & <b>not markup</b>"
