"""The diff a moderator sees between the version under review and the previous published one."""

import json

import pytest

from moderation.diff import cell_diff_prepare, version_diff
from repository.models import Version
from repository.services.drafts import draft_update, record_create
from tests.factories import notebook_dict, upload

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def queued_diffs(monkeypatch):
    """The version pks whose cell diff was queued for a worker, instead of being sent to a broker."""
    from moderation import tasks

    queued = []
    monkeypatch.setattr(tasks.cell_diff_prepare_task, "delay", queued.append)
    return queued


def prepared_diff(version: Version) -> dict:
    """The diff as the page shows it once the worker has prepared the cells part."""
    cell_diff_prepare(version_pk=version.pk)
    return version_diff(version, reader=version.created_by)


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

    diff = prepared_diff(second)

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


def test_a_crafted_notebook_is_diffed_only_up_to_the_line_cap_and_says_so(user):
    _, second = crafted_pair(user, lines=12_000)

    cells = prepared_diff(second)["cells"]

    assert cells["available"]
    assert cells["diff"].startswith("--- v1\n+++ v2\n")
    assert "only lines 1 to 5,000 of the cells' sources were compared" in cells["diff"]


def test_the_cell_diff_is_computed_once_per_pair_of_notebooks(user, local_blob_storage):
    import shutil

    _, second = crafted_pair(user, lines=300)
    first_view = prepared_diff(second)["cells"]
    # A second preparation (a task queued twice) and every view read the cache: with the notebooks' bytes gone
    # they still show the diff.
    shutil.rmtree(local_blob_storage)

    assert cell_diff_prepare(version_pk=second.pk) == "cached"
    second_view = version_diff(second, reader=user)["cells"]

    assert first_view["available"] and second_view == first_view


def test_a_notebook_too_large_to_diff_is_named_as_such_not_parsed(user, monkeypatch):
    from moderation import diff

    _, second = crafted_pair(user, lines=300)
    monkeypatch.setattr(diff, "MAX_DIFFED_NOTEBOOK_BYTES", 100)

    assert prepared_diff(second)["cells"]["available"] is False


# --- off the request path ---------------------------------------------------------------------------------------


@pytest.fixture
def slow_diff(monkeypatch):
    """The cell diff made slow (as a crafted notebook makes it) and watched: its calls are counted."""
    import time

    from moderation import diff

    real = diff._bounded_cell_diff
    calls = []

    def slow(before, after):
        calls.append(1)
        if len(calls) == 1:
            time.sleep(3)
        return real(before, after)

    monkeypatch.setattr(diff, "_bounded_cell_diff", slow)
    return calls


def test_the_request_page_never_diffs_notebooks_itself_and_shows_the_diff_once_a_worker_has(
        client, user, community, community_moderator, queued_diffs, slow_diff):
    import time

    from moderation.models import ReviewRequest
    from moderation.tasks import cell_diff_prepare_task

    _, second = crafted_pair(user, lines=300)
    Version.objects.filter(pk=second.pk).update(state=Version.State.IN_REVIEW)
    review = ReviewRequest.objects.create(version=second, community=community, submitted_by=user)
    client.force_login(community_moderator)

    started = time.monotonic()
    html = client.get(f"/requests/{review.pk}/").content.decode()
    again = client.get(f"/requests/{review.pk}/").content.decode()
    poll = client.get(f"/requests/{review.pk}/diff/cells/")

    assert time.monotonic() - started < 2  # the slow diff takes 3 s
    assert slow_diff == []
    assert "The diff is being prepared" in html and "The diff is being prepared" in again
    assert "repository/cell_diff.js" in html and f'data-poll-url="/requests/{review.pk}/diff/cells/"' in html
    assert poll.status_code == 202 and "The diff is being prepared" in poll.content.decode()
    assert queued_diffs == [second.pk]  # once for the three looks, not once per look

    assert cell_diff_prepare_task.apply(args=queued_diffs).get() == "prepared"  # what the worker does

    html = client.get(f"/requests/{review.pk}/").content.decode()
    poll = client.get(f"/requests/{review.pk}/diff/cells/")
    assert "The diff is being prepared" not in html and "cell_diff.js" not in html
    assert "--- v1\n+++ v2\n" in html and "+x37" in html
    assert poll.status_code == 200 and "+++ v2" in poll.content.decode()
    assert slow_diff == [1] and queued_diffs == [second.pk]


def test_submitting_a_new_version_has_its_diff_prepared_before_a_moderator_opens_the_request(
        client, user, community, community_moderator, queued_diffs, django_capture_on_commit_callbacks):
    from django.core.cache import cache

    from moderation.services import review_act, review_submit
    from moderation.tasks import cell_diff_prepare_task
    from repository import demo
    from tests.factories import demo_draft

    first = demo_draft(user)
    Version.objects.filter(pk=first.pk).update(state=Version.State.PUBLISHED)
    second = next_version(Version.objects.get(pk=first.pk), user)
    second = draft_update(version=second, actor=user, metadata={
        "title": "Thermal expansion, second look", "description": "Demo", "license": "CC-BY-4.0",
        "creators": [{"name": "Doe, Jane"}], "container_image": first.container_image,
        "notebook_path": first.notebook_path})
    notebook = json.loads(demo.notebook())
    notebook["cells"].append({"id": "second-look", "cell_type": "code", "execution_count": None, "metadata": {},
                              "outputs": [], "source": "print('a second look')"})
    second.files.filter(path=first.notebook_path).delete()
    upload(second, user, first.notebook_path, json.dumps(notebook).encode())

    with django_capture_on_commit_callbacks(execute=True):
        review = review_submit(version=second, actor=user, community=community)
    assert queued_diffs == [second.pk]
    cell_diff_prepare_task.apply(args=queued_diffs)
    client.force_login(community_moderator)

    html = client.get(f"/requests/{review.pk}/").content.decode()

    assert "The diff is being prepared" not in html
    assert "+print(&#x27;a second look&#x27;)" in html
    # A resubmission (the author changed the draft after a request for changes) is prepared again, unless the
    # cache already holds the diff of these two notebooks.
    review_act(request_id=review.pk, action="request_changes", actor=community_moderator, comment="More.")
    with django_capture_on_commit_callbacks(execute=True):
        review_act(request_id=review.pk, action="resubmit", actor=user)
    assert queued_diffs == [second.pk]
    review_act(request_id=review.pk, action="request_changes", actor=community_moderator, comment="Again.")
    cache.clear()
    with django_capture_on_commit_callbacks(execute=True):
        review_act(request_id=review.pk, action="resubmit", actor=user)
    assert queued_diffs == [second.pk, second.pk]


def test_notebooks_the_worker_cannot_read_are_said_not_comparable_for_a_while_not_prepared_for_ever(
        user, local_blob_storage, queued_diffs):
    import shutil

    _, second = crafted_pair(user, lines=30)
    shutil.rmtree(local_blob_storage)  # storage failing under the worker

    assert cell_diff_prepare(version_pk=second.pk) == "unreadable"

    cells = version_diff(second, reader=user)["cells"]
    assert cells["available"] is False and not cells.get("pending")
    assert queued_diffs == []
