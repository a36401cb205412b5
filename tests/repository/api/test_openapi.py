"""The OpenAPI description that API clients generate code from."""

import io

import pytest
from django.core.management import call_command


def test_the_schema_generates_without_warnings_and_validates():
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=io.StringIO())


@pytest.mark.django_db
def test_every_operation_documents_its_problem_responses(client):
    document = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    upload = document["paths"]["/api/records/{record_id}/draft/files/{file_path}"]["put"]
    assert {"201", "400", "401", "404", "409", "411", "413"} <= set(upload["responses"])
    assert "application/problem+json" in upload["responses"]["413"]["content"]
    for path, operations in document["paths"].items():
        if path.startswith("/api/records") or path.startswith("/api/user"):
            for method, operation in operations.items():
                if {} in operation.get("security", []):  # public reads: anyone may call them
                    # What names a thing may answer 404; the search names nothing, its problem is a bad query.
                    problem = "400" if path == "/api/records" else "404"
                    assert problem in operation["responses"], (method, path)
                    assert "application/problem+json" in operation["responses"][problem]["content"], (method, path)
                else:
                    assert "401" in operation["responses"], (method, path)
                    assert "503" in operation["responses"], (method, path)  # the database unavailable


@pytest.fixture
def components(client, db):
    document = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    return document["components"]["schemas"]


def _string_patterns(prop: dict) -> list[str]:
    return [alternative["pattern"] for alternative in prop.get("oneOf", [prop]) if "pattern" in alternative]


def test_the_schema_types_what_the_services_accept(components):
    """A client generated from the schema builds requests the API takes: typed objects, patterns, closed inputs."""
    import re

    tolerance = components["DraftMetadataInput"]["properties"]["comparison_tolerance"]
    assert tolerance["type"] == "object" and tolerance["additionalProperties"] is False
    assert set(tolerance["properties"]) == {"rtol", "atol", "pixel_tolerance", "max_differing_pixels"}
    assert tolerance["properties"]["pixel_tolerance"] == {**tolerance["properties"]["pixel_tolerance"],
                                                          "type": "integer", "minimum": 0, "maximum": 255}

    creator = components["CreatorInput"]
    [ror_pattern] = _string_patterns(creator["properties"]["affiliation_ror"])
    [orcid_pattern] = _string_patterns(creator["properties"]["orcid"])
    assert re.search(ror_pattern, "https://ror.org/02mhbdp94") and re.search(ror_pattern, "02mhbdp94")
    assert not re.search(ror_pattern, "not a ror")
    assert re.search(orcid_pattern, "https://orcid.org/0000-0002-1825-0097")
    assert not re.search(orcid_pattern, "0000-0002-1825")
    for name in ("CreatorInput", "DataReferenceInput", "FundingInput", "RelatedIdentifierInput", "SubmitInput"):
        assert components[name]["additionalProperties"] is False, name

    reference = components["DataReferenceInput"]["properties"]
    assert reference["query"]["type"] == "object" and "archive_query only" in reference["query"]["description"]
    assert "uploaded" in components["DraftMetadataInput"]["properties"]["notebook_path"]["description"]
    assert "the metadata under `metadata`" in components["DraftMetadataInput"]["description"]


@pytest.mark.django_db
def test_the_export_formats_are_described_in_their_own_media_types(client):
    document = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    for path in ("/api/records/{record_id}", "/api/records/{record_id}/versions/{number}"):
        ok = document["paths"][path]["get"]["responses"]["200"]["content"]
        assert ok["application/json"]["schema"]["$ref"].endswith("/PublicVersionOutput")
        assert ok["application/x-bibtex"]["schema"]["type"] == "string"
        assert ok["application/vnd.citationstyles.csl+json"]["schema"]["type"] == "object"
