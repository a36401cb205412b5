"""Management commands as an operator runs them."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from repository.models import LocalDoi, Record, Version, VersionFile
from repository.services.notebooks import notebook_validate

pytestmark = pytest.mark.django_db


def test_demo_creates_users_and_a_draft_with_a_valid_notebook_and_its_data():
    out = io.StringIO()

    call_command("demo", stdout=out)

    text = out.getvalue()
    assert "submitter" in text and "moderator" in text and "admin" in text and "/uploads/" in text
    record = Record.objects.get(owners__username="submitter", versions__state="draft")
    files = {f.path: f for f in VersionFile.objects.filter(version__record=record).select_related("blob")}
    assert set(files) == {"thermal_expansion.ipynb", "data/measurements.csv"}
    draft = record.versions.get()
    assert draft.notebook_path == "thermal_expansion.ipynb"
    assert draft.container_image.endswith(tuple("0123456789abcdef"))


def test_demo_publishes_one_record_through_review_with_a_registered_doi(client):
    out = io.StringIO()
    call_command("demo", stdout=out)
    call_command("demo", stdout=io.StringIO())  # again: nothing is created twice

    published = Version.objects.get(record__owners__username="submitter", state="published")
    assert LocalDoi.objects.get(doi=published.doi).state == "findable"
    assert LocalDoi.objects.get(doi=published.record.concept_doi).state == "findable"
    assert f"/records/{published.record.public_id}/" in out.getvalue()
    assert client.get(f"/records/{published.record.public_id}/").status_code == 200
    assert Record.objects.filter(owners__username="submitter").count() == 2


def test_the_demo_notebook_reads_the_demo_data_and_its_outputs_are_what_the_code_prints():
    from repository import demo

    document = notebook_validate(io.BytesIO(demo.notebook()))
    outputs = ["".join(cell["outputs"][0]["text"]) for cell in document["cells"] if cell["cell_type"] == "code"]
    assert outputs == ["12 measurements from 293 K to 403 K\n", "linear expansion coefficient: 1.650e-05 1/K\n"]
    assert "data/measurements.csv" in "".join(document["cells"][1]["source"])


def test_demo_twice_keeps_one_draft_and_prints_working_passwords(client):
    call_command("demo", stdout=io.StringIO())
    out = io.StringIO()
    call_command("demo", stdout=out)

    assert Record.objects.filter(owners__username="submitter", versions__state="draft").count() == 1
    password = next(line.split()[1] for line in out.getvalue().splitlines() if line.strip().startswith("submitter"))
    assert client.login(username="submitter", password=password)


def test_create_token_prints_a_working_token(user):
    out = io.StringIO()

    call_command("create_token", user.username, "--name", "laptop", stdout=out)

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {out.getvalue().strip()}")
    assert client.get("/api/user/records").status_code == 200


def test_create_token_for_an_unknown_user_fails_with_one_line():
    with pytest.raises(CommandError) as raised:
        call_command("create_token", "nobody")
    assert str(raised.value) == "No user 'nobody'."
