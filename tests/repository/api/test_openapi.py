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
