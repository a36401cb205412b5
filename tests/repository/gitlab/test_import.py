"""New versions from GitLab: an owner links a record to a (public) project; a tag push (the webhook, its secret
checked) or an import request becomes one version draft with the files at that tag and a reserved DOI."""

import json

import pytest
from rest_framework.test import APIClient

from repository import demo
from repository.errors import Conflict, InvalidInput, PermissionDenied
from repository.gitlab import tasks
from repository.gitlab.models import GitLabImport, GitLabLink
from repository.gitlab.services.imports import gitlab_import_execute, gitlab_import_request, gitlab_link_set
from repository.models import DoiOutbox, Version
from repository.services.new_versions import draft_discard
from repository.storage import open_blob
from tests.factories import notebook_bytes, published_version

PROJECT = "jane/thermal-expansion"
TAG_FILES = {
    "thermal.ipynb": notebook_bytes(cells=3),
    "data/measurements.csv": demo.measurements_csv(),
    "README.md": b"# Thermal expansion\n",
}


@pytest.fixture
def gitlab(settings, gitlab_server):
    settings.GITLAB_URL = gitlab_server.url
    settings.GITLAB_TOKEN = gitlab_server.token
    gitlab_server.push_pipelines = False
    gitlab_server.create_project(PROJECT, files=TAG_FILES)
    gitlab_server.set_project(PROJECT, visibility="public")
    gitlab_server.create_tag(PROJECT, "v2.0", "main", message="Second version")
    return gitlab_server


@pytest.fixture
def eager_imports(monkeypatch):
    """gitlab_import_task runs at once when queued (the tests capture on_commit callbacks themselves)."""
    ran = []

    def run(pk):
        ran.append(pk)
        return tasks.gitlab_import_task.apply(args=[pk])

    monkeypatch.setattr(tasks.gitlab_import_task, "delay", run)
    return ran


@pytest.fixture
def record_version(db, user, other_user):
    return published_version(user, other_user)


@pytest.fixture
def linked(record_version, user, gitlab):
    _, secret = gitlab_link_set(record=record_version.record, actor=user, project=PROJECT)
    return secret


def files_of(version: Version) -> dict[str, bytes]:
    out = {}
    for version_file in version.files.select_related("blob"):
        with open_blob(version_file.blob.storage_key) as handle:
            out[version_file.path] = handle.read()
    return out


def post_hook(body: dict, token: str, event: str = "Tag Push Hook"):
    return APIClient().post("/api/hooks/gitlab", data=json.dumps(body), content_type="application/json",
                            HTTP_X_GITLAB_TOKEN=token, HTTP_X_GITLAB_EVENT=event)


# --- linking -------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_owner_links_a_public_project_and_gets_the_webhook_secret_once(api, record_version, gitlab):
    response = api.put(f"/api/records/{record_version.record.public_id}/gitlab", {"project": PROJECT}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["project"] == PROJECT and body["project_id"] == gitlab.project(PROJECT)["id"]
    assert body["webhook_url"].endswith("/api/hooks/gitlab") and len(body["webhook_secret"]) >= 32
    link = GitLabLink.objects.get(record=record_version.record)
    assert body["webhook_secret"] not in link.webhook_secret_hash  # only a hash is kept
    shown = api.get(f"/api/records/{record_version.record.public_id}/gitlab").json()
    assert "webhook_secret" not in shown and shown["project"] == PROJECT


@pytest.mark.django_db
def test_linking_refuses_strangers_private_projects_and_projects_of_other_records(user, other_user, record_version,
                                                                                   gitlab):
    record = record_version.record
    with pytest.raises(PermissionDenied):
        gitlab_link_set(record=record, actor=other_user, project=PROJECT)
    gitlab.create_project("jane/private-work", files={"a.txt": "x"})
    with pytest.raises(InvalidInput, match="not public"):
        gitlab_link_set(record=record, actor=user, project="jane/private-work")
    with pytest.raises(InvalidInput, match="no project"):
        gitlab_link_set(record=record, actor=user, project="jane/missing")
    gitlab_link_set(record=record, actor=user, project=PROJECT)
    other = published_version(user, other_user)
    with pytest.raises(Conflict, match="another record"):
        gitlab_link_set(record=other.record, actor=user, project=PROJECT)


# --- the webhook ---------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_webhook_refuses_a_wrong_or_missing_token(gitlab, linked, settings):
    body = gitlab.tag_push_event(PROJECT, "v2.0")

    assert post_hook(body, "wrong").status_code == 403
    assert post_hook(body, "").status_code == 403
    assert post_hook(body, linked[:-1]).status_code == 403
    settings.GITLAB_WEBHOOK_SECRET = "instance-wide-secret"
    assert post_hook(body, "instance-wide-secret-not").status_code == 403
    assert not GitLabImport.objects.exists()


@pytest.mark.django_db
def test_an_unlinked_project_gets_the_same_403_and_the_instance_secret_is_accepted(gitlab, settings):
    body = gitlab.tag_push_event(PROJECT, "v2.0")
    assert post_hook(body, "anything").status_code == 403

    settings.GITLAB_WEBHOOK_SECRET = "instance-wide-secret"
    response = post_hook(body, "instance-wide-secret")

    assert response.status_code == 202 and response.json() == {"status": "ignored"}


@pytest.mark.django_db
def test_a_tag_push_makes_one_draft_with_the_files_at_the_tag_and_a_reserved_doi(
        gitlab, linked, record_version, user, eager_imports, django_capture_on_commit_callbacks):
    body = gitlab.tag_push_event(PROJECT, "v2.0")

    with django_capture_on_commit_callbacks(execute=True):
        first = post_hook(body, linked)
    with django_capture_on_commit_callbacks(execute=True):
        second = post_hook(body, linked)  # GitLab redelivers; or the same tag is pushed again

    assert first.status_code == 202 and first.json()["status"] == "queued"
    assert second.status_code == 202 and second.json() == {"status": "known", "import_id": first.json()["import_id"]}
    assert len(eager_imports) == 1
    row = GitLabImport.objects.get()
    assert row.status == "done", row.message
    assert row.source == "webhook" and row.ref == "v2.0" and row.sha == gitlab.tags(PROJECT)["v2.0"]["commit_sha"]
    draft = row.version
    assert draft.state == "draft" and draft.number == 2 and draft.record_id == record_version.record_id
    assert draft.created_by == user and draft.version_label == "v2.0"
    assert files_of(draft) == TAG_FILES
    assert draft.notebook_path == "thermal.ipynb"
    assert draft.doi and draft.doi != record_version.doi
    assert DoiOutbox.objects.filter(version=draft, doi=draft.doi).exists()
    assert draft.title == record_version.title  # metadata from the latest published version, ready for review
    assert Version.objects.filter(record=record_version.record).count() == 2


@pytest.mark.django_db
def test_importing_the_same_tag_again_through_the_api_returns_the_same_import(
        api, gitlab, linked, record_version, eager_imports, django_capture_on_commit_callbacks):
    url = f"/api/records/{record_version.record.public_id}/versions/import"

    with django_capture_on_commit_callbacks(execute=True):
        first = api.post(url, {"project": PROJECT, "ref": "v2.0"}, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        second = api.post(url, {"ref": "v2.0"}, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        post_hook(gitlab.tag_push_event(PROJECT, "v2.0"), linked)

    assert first.status_code == 202 and second.status_code == 202, first.content
    assert second.json()["id"] == first.json()["id"] and second.json()["status"] == "done"
    assert second.json()["version"] == 2
    assert GitLabImport.objects.count() == 1 and len(eager_imports) == 1
    assert Version.objects.filter(record=record_version.record).count() == 2
    # Executing it again (a redelivered task) changes nothing.
    gitlab_import_execute(import_pk=first.json()["id"])
    assert Version.objects.filter(record=record_version.record).count() == 2


@pytest.mark.django_db
def test_the_api_refuses_another_project_and_unlinked_records(api, gitlab, record_version, user):
    url = f"/api/records/{record_version.record.public_id}/versions/import"
    assert api.post(url, {"ref": "v2.0"}, format="json").status_code == 409  # not linked yet

    gitlab_link_set(record=record_version.record, actor=user, project=PROJECT)

    assert api.post(url, {"project": "someone/else", "ref": "v2.0"}, format="json").status_code == 409
    assert api.post(url, {"ref": "v2.0\nx"}, format="json").status_code == 400
    assert not GitLabImport.objects.exists()


@pytest.mark.django_db
def test_a_deleted_tag_and_other_events_are_ignored(gitlab, linked):
    assert post_hook(gitlab.tag_push_event(PROJECT, "v2.0"), linked, event="Push Hook").json() == {
        "status": "ignored"}
    gitlab.delete_tag(PROJECT, "v2.0")
    response = post_hook(gitlab.tag_push_event(PROJECT, "v2.0", deleted=True), linked)

    assert response.status_code == 202 and response.json() == {"status": "ignored"}
    assert not GitLabImport.objects.exists()


@pytest.mark.django_db
def test_a_second_tag_while_a_draft_is_open_fails_with_a_message_and_can_be_asked_again(
        gitlab, linked, record_version, user, eager_imports, django_capture_on_commit_callbacks):
    gitlab.commit(PROJECT, {"README.md": b"# Thermal expansion, again\n"}, message="More")
    gitlab.create_tag(PROJECT, "v2.1", "main")
    with django_capture_on_commit_callbacks(execute=True):
        post_hook(gitlab.tag_push_event(PROJECT, "v2.0"), linked)
        post_hook(gitlab.tag_push_event(PROJECT, "v2.1"), linked)

    failed = GitLabImport.objects.get(ref="v2.1")
    assert failed.status == "failed" and "still draft" in failed.message

    draft_discard(version=GitLabImport.objects.get(ref="v2.0").version, actor=user)
    with django_capture_on_commit_callbacks(execute=True):
        row, queued = gitlab_import_request(record=record_version.record, actor=user, ref="v2.1", source="api")

    assert queued
    row.refresh_from_db()
    assert row.status == "done" and files_of(row.version)["README.md"] == b"# Thermal expansion, again\n"


@pytest.mark.django_db
def test_gitlab_down_during_the_import_is_retried_by_the_task(gitlab, linked, record_version, eager_imports,
                                                              django_capture_on_commit_callbacks):
    gitlab.fail_next(2, 503, path_contains="/repository/")

    with django_capture_on_commit_callbacks(execute=True):
        post_hook(gitlab.tag_push_event(PROJECT, "v2.0"), linked)

    row = GitLabImport.objects.get()
    assert row.status == "done", row.message
    assert files_of(row.version) == TAG_FILES


@pytest.mark.django_db(transaction=True)
def test_the_real_webhook_delivery_from_gitlab_reaches_nbarchive(gitlab, gitlab_client, user, other_user,
                                                                 live_server, monkeypatch):
    queued = []
    monkeypatch.setattr(tasks.gitlab_import_task, "delay", lambda pk: queued.append(pk))
    version = published_version(user, other_user)
    _, secret = gitlab_link_set(record=version.record, actor=user, project=PROJECT)
    gitlab_client.projects.get(PROJECT).hooks.create({"url": f"{live_server.url}/api/hooks/gitlab",
                                                      "tag_push_events": True, "push_events": False,
                                                      "token": secret})

    gitlab.create_tag(PROJECT, "v3.0", "main")

    delivery = _wait_for_delivery(gitlab)
    assert delivery["status"] == 202, delivery
    row = GitLabImport.objects.get(record=version.record)
    assert row.ref == "v3.0" and queued == [row.pk]


def _wait_for_delivery(server, timeout: float = 20.0) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [d for d in server.hook_deliveries if d["status"] is not None or d["error"]]
        if done:
            return done[0]
        time.sleep(0.1)
    raise AssertionError("GitLab never delivered the webhook")
