"""Migration 0020_search_document_access: existing documents take their version's access, and the full-text
index keeps following the documents afterwards (on SQLite its triggers survive the new columns). Runs on SQLite
and PostgreSQL alike."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from repository.models import SearchDocument, Version
from repository.search import search_index_version
from tests.search.conftest import found

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("repository", "0019_version_file_access")]


def _migrate(targets):
    return MigrationExecutor(connection).migrate(targets)


def _latest():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def test_documents_take_their_versions_access_and_the_text_index_still_follows():
    latest = _latest()
    try:
        apps = _migrate(BEFORE).apps
        user = apps.get_model("auth", "User").objects.create(username="jane")
        record = apps.get_model("repository", "Record").objects.create(public_id="abcde-12345")
        versions = {access: apps.get_model("repository", "Version").objects.create(
            record=record, number=number, created_by=user, state="published", title=f"Tomography {access}",
            access_files=access, embargo_until="2031-03-01" if access == "embargoed" else None)
            for number, access in enumerate(("open", "embargoed", "restricted"), start=1)}
        for version in versions.values():
            apps.get_model("repository", "SearchDocument").objects.create(
                version=version, record=record, number=version.number, title=version.title)
        _migrate(latest)

        assert dict(SearchDocument.objects.values_list("title", "access")) == {
            "Tomography open": "open", "Tomography embargoed": "embargoed", "Tomography restricted": "restricted"}
        assert str(SearchDocument.objects.get(access="embargoed").embargo_until) == "2031-03-01"
        # Rewritten documents are still indexed for full text (the SQLite triggers are still there).
        for version in Version.objects.all():
            search_index_version(version=version)
        assert sorted(found("tomography", all_versions=True)) == [
            "Tomography embargoed", "Tomography open", "Tomography restricted"]
    finally:
        _migrate(latest)
