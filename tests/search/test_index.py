"""The index follows what readers see: publish, correct, withdraw, a new version; and a full rebuild."""

import pytest
from django.core.management import call_command

from repository.models import SearchDocument, Version
from repository.selectors import version_metadata
from repository.services.drafts import draft_update
from repository.services.new_versions import version_new_draft
from repository.services.published import version_correct_metadata, version_withdraw
from tests.factories import UserFactory, accept, sync_pending
from tests.search.conftest import found

pytestmark = pytest.mark.django_db


def test_a_published_version_is_found_by_its_title_and_its_notebook_text(publish):
    publish(title="Thermal expansion of copper")
    assert found("copper") == ["Thermal expansion of copper"]
    # "linear_regression" is only in the demo notebook's code, "twelve temperatures" only in its markdown.
    assert found("linear_regression") == ["Thermal expansion of copper"]
    assert found('"twelve temperatures"') == ["Thermal expansion of copper"]


def test_drafts_and_versions_in_review_are_never_found(user):
    from tests.factories import demo_draft

    draft = demo_draft(user, title="Secret draft about axolotls")
    Version.objects.filter(pk=draft.pk).update(state=Version.State.IN_REVIEW)
    assert found("axolotls") == []
    assert found() == []


def test_a_correction_replaces_what_is_found(publish, user):
    version = publish(title="Band gaps of perovskytes")
    metadata = {**version_metadata(version), "title": "Band gaps of perovskites"}
    version_correct_metadata(version=version, actor=user, metadata=metadata, reason="typo")
    assert found("perovskites") == ["Band gaps of perovskites"]
    assert found("perovskytes") == []


def test_a_withdrawn_version_is_never_found(publish):
    version = publish(title="Retracted analysis of ocean temperatures")
    admin = UserFactory(is_superuser=True)
    version_withdraw(version=version, actor=admin, reason="The data were wrong.")
    assert found("ocean") == []
    assert found("ocean", all_versions=True) == []
    assert not SearchDocument.objects.filter(pk=version.pk).exists()


def _second_version(first, user, moderator, **metadata):
    draft = version_new_draft(record=first.record, actor=user)
    draft_update(version=draft, actor=user, metadata={**version_metadata(draft), **metadata})
    second = accept(draft, moderator)
    sync_pending()
    return second


def test_a_new_version_supersedes_the_one_before(publish, user, moderator):
    first = publish(title="Galaxy rotation curves")
    second = _second_version(first, user, moderator, title="Galaxy rotation curves, revised")
    assert found("galaxy") == ["Galaxy rotation curves, revised"]
    assert sorted(found("galaxy", all_versions=True)) == ["Galaxy rotation curves", "Galaxy rotation curves, revised"]
    # A version DOI finds that version, old or not; the concept DOI finds the record's latest.
    assert found(first.doi) == ["Galaxy rotation curves"]
    assert found(second.doi) == ["Galaxy rotation curves, revised"]
    assert found(first.record.concept_doi) == ["Galaxy rotation curves, revised"]

    # The new version withdrawn: the one before is the record's latest again.
    version_withdraw(version=second, actor=UserFactory(is_superuser=True), reason="Wrong file.")
    assert found("galaxy") == ["Galaxy rotation curves"]


def test_reindex_rebuilds_the_same_index(publish, user, moderator):
    first = publish(title="Soil moisture retrieval", keywords=["remote sensing"])
    _second_version(first, user, moderator, title="Soil moisture retrieval v2")
    before = sorted(SearchDocument.objects.values_list("pk", "is_latest", "title", "notebook_text"))
    SearchDocument.objects.all().delete()
    assert found("soil") == []
    call_command("search_reindex", verbosity=0)
    assert sorted(SearchDocument.objects.values_list("pk", "is_latest", "title", "notebook_text")) == before
    assert found("soil") == ["Soil moisture retrieval v2"]
    assert found("keyword:\"remote sensing\"") == ["Soil moisture retrieval v2"]


def test_a_re_verification_moves_the_version_in_the_verdict_facet(publish, no_queue):
    from repository.services.runs import _finish, run_request

    version = publish(title="Re-verified months later")
    for verdict in ("reproduced", "execution_failed"):
        run = run_request(version=version, requested_by=None, purpose="reverification")
        run.claim = ""
        _finish(run, verdict=verdict, message="")
        assert found(filters={"verdict": [verdict]}) == ["Re-verified months later"]
    assert found(filters={"verdict": ["reproduced"]}) == []
