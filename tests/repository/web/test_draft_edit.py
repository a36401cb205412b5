"""The deposit form: what is saved, and how the service's refusals come back onto the fields typed in."""

import json

import pytest
from django.urls import reverse

from repository.models import AuditEvent, Creator, DataReference, Version
from repository.services.drafts import draft_update, record_create
from tests.factories import upload
from tests.repository.web.helpers import IMAGE, SHA, deposit_post

pytestmark = pytest.mark.django_db

ORCID = "0000-0002-1825-0097"
BAD_ORCID = "0000-0002-1825-0098"  # wrong check digit


@pytest.fixture
def draft(user):
    version = record_create(owner=user, metadata={"title": "Original title"})
    upload(version, user, path="analysis.ipynb")
    return version


@pytest.fixture
def edit_url(draft):
    return reverse("repository:draft_edit", kwargs={"record_id": draft.record.public_id})


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


def valid_fields(**overrides) -> dict:
    fields = {"title": "Band gaps of 2D perovskites", "description": "Reproduces Fig. 3.", "license": "cc-by-4.0",
              "keywords": "perovskites, DFT, , dft", "container_image": IMAGE, "notebook_path": "analysis.ipynb",
              "version_label": "v1.0"}
    fields.update(overrides)
    return fields


def creator(**overrides) -> dict:
    row = {"name": "Curie, Marie", "given_name": "Marie", "family_name": "Curie", "orcid": ORCID,
           "affiliation": "ETH Zurich", "affiliation_ror": "https://ror.org/05a28rw58"}
    row.update(overrides)
    return row


def url_reference(**overrides) -> dict:
    row = {"kind": "url", "identifier": "https://data.example.org/gaps.csv", "target_path": "data/gaps.csv",
           "sha256": SHA, "size": "1024"}
    row.update(overrides)
    return row


def assert_nothing_saved(draft):
    draft.refresh_from_db()
    assert draft.title == "Original title"
    assert not Creator.objects.filter(version=draft).exists()
    assert not DataReference.objects.filter(version=draft).exists()
    # Only the update record_create made when the draft was created with its title.
    assert AuditEvent.objects.filter(version=draft, action="draft.update").count() == 1


def test_edit_page_shows_the_current_metadata(signed_in, user, draft, edit_url):
    draft_update(version=draft, actor=user, metadata={
        "title": "Original title", "keywords": ["phonons", "graphene"], "notebook_path": "analysis.ipynb",
        "creators": [{"name": "Curie, Marie", "orcid": ORCID}],
        "data_references": [{"kind": "archive_query", "identifier": "https://archive.example.org/api/query",
                             "query": {"elements": ["Ti", "O"]}, "target_path": "data/q.json", "sha256": SHA,
                             "size": 10}],
    })

    html = signed_in.get(edit_url).content.decode()

    assert 'value="Original title"' in html
    assert 'value="phonons, graphene"' in html
    assert 'value="Curie, Marie"' in html and f'value="{ORCID}"' in html
    assert "&quot;elements&quot;" in html  # the query, as JSON text
    assert '<option value="analysis.ipynb" selected>' in html
    assert 'list="spdx-licenses"' in html and '<option value="CC-BY-4.0">' in html


def test_saving_valid_metadata_stores_it_and_goes_to_the_draft_page(signed_in, draft, edit_url):
    data = deposit_post(
        valid_fields(),
        creators=[creator(), {}, creator(name="Example University", given_name="", family_name="", orcid="",
                                         affiliation="", affiliation_ror="")],
        related_identifiers=[{"identifier": "https://doi.org/10.1038/s41586-020-2649-2", "scheme": "DOI",
                              "relation": "IsSupplementTo"}, {}],
        funding=[{"funder_name": "Swiss National Science Foundation", "award_number": "200021"}],
        data_references=[
            url_reference(title="Band gaps"),
            {"kind": "archive_query", "identifier": "https://nomad-lab.eu/prod/v1/api/v1/entries/archive/query",
             "query": '{"results.material.elements": ["Ti", "O"]}', "target_path": "data/query.json",
             "sha256": SHA, "size": "10"},
            {},
        ],
    )

    response = signed_in.post(edit_url, data)

    assert response.status_code == 302, response.context and response.context["deposit"].other_errors
    assert response["Location"] == reverse("repository:draft_detail", kwargs={"record_id": draft.record.public_id})
    draft.refresh_from_db()
    assert draft.title == "Band gaps of 2D perovskites" and draft.version_label == "v1.0"
    assert draft.license == "CC-BY-4.0"
    assert draft.keywords == ["perovskites", "DFT"]
    assert draft.container_image == IMAGE and draft.notebook_path == "analysis.ipynb"
    assert draft.funding == [{"funder_name": "Swiss National Science Foundation", "award_number": "200021"}]
    creators = list(draft.creators.order_by("position").values_list("name", "orcid", "affiliation_ror"))
    assert creators == [("Curie, Marie", ORCID, "05a28rw58"), ("Example University", "", "")]
    related = draft.related_identifiers.get()
    assert (related.identifier, related.scheme, related.relation) == (
        "10.1038/s41586-020-2649-2", "DOI", "IsSupplementTo")
    references = list(draft.data_references.order_by("position"))
    assert [r.target_path for r in references] == ["data/gaps.csv", "data/query.json"]
    assert references[0].size == 1024 and references[0].query is None and references[0].title == "Band gaps"
    assert references[1].query == {"results.material.elements": ["Ti", "O"]}


def test_an_invalid_orcid_is_shown_on_its_row_and_nothing_is_saved(signed_in, draft, edit_url):
    # A blank first row: the error must land on the row the user typed in, not on the service's position 0.
    data = deposit_post(valid_fields(), creators=[{}, creator(orcid=BAD_ORCID)])

    response = signed_in.post(edit_url, data)

    assert response.status_code == 200
    rows = response.context["formsets"]["creators"].forms
    assert "orcid" not in rows[0].errors
    assert "wrong check digit" in " ".join(rows[1].errors["orcid"])
    html = response.content.decode()
    assert "Nothing was saved" in html
    assert f'value="{BAD_ORCID}"' in html and 'value="Band gaps of 2D perovskites"' in html
    assert_nothing_saved(draft)


def test_a_tag_only_container_image_is_refused_on_its_field(signed_in, draft, edit_url):
    response = signed_in.post(edit_url, deposit_post(valid_fields(container_image="python:3.11")))

    assert response.status_code == 200
    assert "Pin the image by digest" in " ".join(response.context["form"].errors["container_image"])
    assert 'value="python:3.11"' in response.content.decode()
    assert_nothing_saved(draft)


def test_an_unknown_licence_is_refused_on_its_field(signed_in, draft, edit_url):
    response = signed_in.post(edit_url, deposit_post(valid_fields(license="Do-What-I-Like-1.0")))

    assert response.status_code == 200
    assert "not an SPDX license identifier" in " ".join(response.context["form"].errors["license"])
    assert_nothing_saved(draft)


def test_a_bad_sha256_is_shown_on_its_data_reference_row(signed_in, draft, edit_url):
    data = deposit_post(valid_fields(), data_references=[
        url_reference(), url_reference(target_path="data/other.csv", sha256="B" * 64)])

    response = signed_in.post(edit_url, data)

    assert response.status_code == 200
    rows = response.context["formsets"]["data_references"].forms
    assert not rows[0].errors
    assert "64 lower-case hexadecimal" in " ".join(rows[1].errors["sha256"])
    assert_nothing_saved(draft)


def test_every_problem_is_reported_at_once(signed_in, draft, edit_url):
    data = deposit_post(valid_fields(license="nope nope", container_image="python:3.11"),
                        creators=[creator(orcid=BAD_ORCID)],
                        data_references=[url_reference(identifier="http://127.0.0.1/data.csv")])

    response = signed_in.post(edit_url, data)

    context = response.context
    assert set(context["form"].errors) == {"license", "container_image"}
    assert "orcid" in context["formsets"]["creators"].forms[0].errors
    assert "identifier" in context["formsets"]["data_references"].forms[0].errors
    assert_nothing_saved(draft)


def test_a_data_reference_without_checksum_asks_for_it(signed_in, draft, edit_url):
    data = deposit_post(valid_fields(), data_references=[url_reference(sha256="", size="")])

    response = signed_in.post(edit_url, data)

    errors = response.context["formsets"]["data_references"].forms[0].errors
    assert errors["sha256"] == ["Required for this kind of reference."]
    assert errors["size"] == ["Required for this kind of reference."]
    assert_nothing_saved(draft)


def test_a_query_that_is_not_json_is_refused_on_its_field(signed_in, draft, edit_url):
    data = deposit_post(valid_fields(), data_references=[
        url_reference(kind="archive_query", identifier="https://archive.example.org/api", query="{elements: Ti}")])

    response = signed_in.post(edit_url, data)

    assert "not valid JSON" in " ".join(response.context["formsets"]["data_references"].forms[0].errors["query"])
    assert_nothing_saved(draft)


def test_a_creator_row_without_a_name_is_refused(signed_in, draft, edit_url):
    data = deposit_post(valid_fields(), creators=[creator(name="")])

    response = signed_in.post(edit_url, data)

    assert response.context["formsets"]["creators"].forms[0].errors["name"]
    assert_nothing_saved(draft)


def test_a_notebook_that_was_not_uploaded_cannot_be_chosen(signed_in, draft, edit_url):
    response = signed_in.post(edit_url, deposit_post(valid_fields(notebook_path="other.ipynb")))

    assert response.status_code == 200 and "notebook_path" in response.context["form"].errors
    assert_nothing_saved(draft)


def test_a_row_marked_for_removal_is_removed(signed_in, user, draft, edit_url):
    draft_update(version=draft, actor=user, metadata={"title": "Original title",
                                                      "creators": [creator(), creator(name="Second, Author")]})

    data = deposit_post(valid_fields(), creators=[creator(), creator(name="Second, Author", DELETE="on")])
    response = signed_in.post(edit_url, data)

    assert response.status_code == 302
    assert list(draft.creators.values_list("name", flat=True)) == ["Curie, Marie"]


def test_clearing_every_field_of_a_row_removes_it(signed_in, user, draft, edit_url):
    draft_update(version=draft, actor=user, metadata={"title": "Original title", "creators": [creator()]})
    blank = {name: "" for name in creator()}

    response = signed_in.post(edit_url, deposit_post(valid_fields(), creators=[blank]))

    assert response.status_code == 302 and not draft.creators.exists()


def test_another_users_draft_cannot_be_edited(client, other_user, draft, edit_url):
    client.force_login(other_user)

    response = client.post(edit_url, deposit_post(valid_fields()))

    assert response.status_code == 404
    assert_nothing_saved(draft)


def test_a_draft_submitted_meanwhile_is_not_changed_and_the_user_is_told(signed_in, draft, edit_url, monkeypatch):
    """Another tab submitted the draft between loading the page and saving the form."""
    from repository.web import views

    real_lookup = views.selectors.draft_get_for_user

    def lookup_then_submit_elsewhere(**kwargs):
        version = real_lookup(**kwargs)
        Version.objects.filter(pk=version.pk).update(state=Version.State.IN_REVIEW)
        return version

    monkeypatch.setattr(views.selectors, "draft_get_for_user", lookup_then_submit_elsewhere)

    response = signed_in.post(edit_url, deposit_post(valid_fields()), follow=True)

    assert response.redirect_chain[-1][0] == reverse("repository:my_uploads")
    assert "only drafts can be edited" in response.content.decode()
    draft.refresh_from_db()
    assert draft.title == "Original title"


def test_a_tampered_form_is_refused_without_an_error_page(signed_in, draft, edit_url):
    data = deposit_post(valid_fields())
    del data["creators-TOTAL_FORMS"]

    response = signed_in.post(edit_url, data)

    assert response.status_code == 200 and b"Nothing was saved" in response.content
    assert_nothing_saved(draft)


def test_the_comparison_tolerance_survives_a_save_and_bad_json_is_a_form_error(client, user):
    version = record_create(owner=user, metadata={"title": "Float32"})
    draft_update(version=version, actor=user, metadata={"title": "Float32", "comparison_tolerance": {"rtol": 1e-6}})
    client.force_login(user)
    url = reverse("repository:draft_edit", kwargs={"record_id": version.record.public_id})
    shown = client.get(url).context["deposit"].form.initial["comparison_tolerance"]
    assert json.loads(shown) == {"rtol": 1e-6}

    saved = client.post(url, deposit_post({"title": "Renamed", "comparison_tolerance": shown}))
    assert saved.status_code == 302
    version.refresh_from_db()
    assert version.title == "Renamed" and version.comparison_tolerance == {"rtol": 1e-6}

    bad = client.post(url, deposit_post({"title": "Again", "comparison_tolerance": "{rtol"}))
    assert bad.status_code == 200 and "not valid JSON" in bad.content.decode()
    version.refresh_from_db()
    assert version.title == "Renamed"
