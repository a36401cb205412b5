"""The diff a moderator sees between the version under review and the previous published one."""

import json

import pytest

from moderation.diff import version_diff
from repository.models import Version
from repository.services.drafts import draft_update, record_create
from tests.factories import notebook_dict, upload

pytestmark = pytest.mark.django_db


def next_version(previous: Version, user) -> Version:
    # The new-version service arrives with the DOI issue; build the row the way it will.
    version = Version.objects.create(record=previous.record, number=previous.number + 1, created_by=user,
                                     title=previous.title, license=previous.license,
                                     notebook_path=previous.notebook_path)
    for version_file in previous.files.all():
        version.files.create(path=version_file.path, blob=version_file.blob)
    return version


def test_a_first_version_has_nothing_to_compare_with(user):
    assert version_diff(record_create(owner=user, metadata={"title": "x"}), reader=user) is None


def test_metadata_files_and_cells_that_changed_are_listed(user):
    first = record_create(owner=user, metadata={"title": "Band gaps", "license": "CC-BY-4.0"})
    notebook = notebook_dict()
    upload(first, user, "nb.ipynb", json.dumps(notebook).encode())
    upload(first, user, "data.csv", b"a,b\n1,2\n")
    upload(first, user, "old.txt", b"old")
    Version.objects.filter(pk=first.pk).update(state=Version.State.PUBLISHED)
    second = next_version(Version.objects.get(pk=first.pk), user)
    second = draft_update(version=second, actor=user, metadata={"title": "Band gaps, corrected", "license": "CC-BY-4.0",
                                                                "notebook_path": "nb.ipynb"})
    second.files.filter(path__in=["nb.ipynb", "data.csv", "old.txt"]).delete()
    notebook["cells"][1]["source"] = "print(0 * 2)  # fixed"
    upload(second, user, "nb.ipynb", json.dumps(notebook).encode())
    upload(second, user, "data.csv", b"a,b\n1,3\n")
    upload(second, user, "new.txt", b"new")

    diff = version_diff(second, reader=user)

    assert diff["previous_number"] == 1
    assert {"field": "title", "before": "Band gaps", "after": "Band gaps, corrected"} in diff["metadata"]
    assert {(f["path"], f["change"]) for f in diff["files"]} == {
        ("nb.ipynb", "changed"), ("data.csv", "changed"), ("old.txt", "removed"), ("new.txt", "added")}
    assert diff["cells"]["available"]
    assert "-print(0 * 2)\n+print(0 * 2)  # fixed" in diff["cells"]["diff"]


def test_unchanged_files_are_not_listed(user):
    first = record_create(owner=user, metadata={"title": "Same"})
    upload(first, user, "a.txt", b"same")
    Version.objects.filter(pk=first.pk).update(state=Version.State.PUBLISHED)

    diff = version_diff(next_version(Version.objects.get(pk=first.pk), user), reader=user)

    assert diff["files"] == [] and diff["metadata"] == []


def test_the_request_page_shows_the_diff_against_the_published_version(client, user, community_moderator, community):
    from moderation.services import review_submit
    from tests.factories import demo_draft

    first = demo_draft(user)
    Version.objects.filter(pk=first.pk).update(state=Version.State.PUBLISHED)
    second = next_version(Version.objects.get(pk=first.pk), user)
    second = draft_update(version=second, actor=user, metadata={
        "title": "Thermal expansion, second look", "description": "Demo", "license": "CC-BY-4.0",
        "creators": [{"name": "Doe, Jane"}], "container_image": first.container_image,
        "notebook_path": first.notebook_path})
    review = review_submit(version=second, actor=user, community=community)
    client.force_login(community_moderator)

    html = client.get(f"/requests/{review.pk}/").content.decode()

    assert "Compared with version 1" in html and "Thermal expansion, second look" in html
    assert "Request changes" in html and "Requestchanges" not in html


@pytest.fixture
def empty_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def crafted_pair(user, lines: int) -> tuple[Version, Version]:
    """A published version and its successor whose notebooks make difflib's matching slow: every line repeats
    just too rarely to be ignored as junk, and the second notebook shuffles them (found from outside: 16 s)."""
    first = record_create(owner=user, metadata={"title": "Crafted"})
    notebook = notebook_dict(cells=1)
    notebook["cells"][0]["source"] = "\n".join(f"x{i % 101}" for i in range(lines))
    upload(first, user, "nb.ipynb", json.dumps(notebook).encode())
    Version.objects.filter(pk=first.pk).update(state=Version.State.PUBLISHED)
    second = next_version(Version.objects.get(pk=first.pk), user)
    second.files.filter(path="nb.ipynb").delete()
    notebook["cells"][0]["source"] = "\n".join(f"x{(i * 37 + i // 101) % 101}" for i in range(lines))
    upload(second, user, "nb.ipynb", json.dumps(notebook).encode())
    return Version.objects.get(pk=first.pk), second


def test_a_crafted_notebook_is_diffed_only_up_to_the_line_cap_and_says_so(user, empty_cache):
    _, second = crafted_pair(user, lines=12_000)

    cells = version_diff(second, reader=user)["cells"]

    assert cells["available"]
    assert cells["diff"].startswith("--- v1\n+++ v2\n")
    assert "only lines 1 to 5,000 of the cells' sources were compared" in cells["diff"]


def test_the_cell_diff_is_computed_once_per_pair_of_notebooks(user, empty_cache, local_blob_storage):
    import shutil

    _, second = crafted_pair(user, lines=300)
    first_view = version_diff(second, reader=user)["cells"]
    # A second view must not read (nor diff) the notebooks again: with their bytes gone it still shows the diff.
    shutil.rmtree(local_blob_storage)

    second_view = version_diff(second, reader=user)["cells"]

    assert first_view["available"] and second_view == first_view


def test_a_notebook_too_large_to_diff_is_named_as_such_not_parsed(user, empty_cache, monkeypatch):
    from moderation import diff

    _, second = crafted_pair(user, lines=300)
    monkeypatch.setattr(diff, "MAX_DIFFED_NOTEBOOK_BYTES", 100)

    assert version_diff(second, reader=user)["cells"]["available"] is False
