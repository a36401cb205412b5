"""The GitLab mirror: each published version's files on the default branch of <namespace>/<record id>, tagged
v<number> with the DOI and the citation; earlier tags stay; mirroring twice changes nothing."""

import io

import pytest

from repository.gitlab import tasks
from repository.gitlab.client import GitLabClient, GitLabUnavailable
from repository.gitlab.services.mirror import version_mirror
from repository.models import AuditEvent, Version
from repository.services.files import draft_file_delete, draft_file_upload
from repository.services.new_versions import version_new_draft
from repository.storage import open_blob
from tests.factories import accept, notebook_bytes, published_version, sync_pending

pytestmark = pytest.mark.django_db
NAMESPACE = "nbarchive-mirror"


@pytest.fixture
def mirror(settings, gitlab_server):
    gitlab_server.create_group(NAMESPACE)
    settings.GITLAB_URL = gitlab_server.url
    settings.GITLAB_TOKEN = gitlab_server.token
    settings.GITLAB_MIRROR_ENABLED = True
    settings.GITLAB_MIRROR_NAMESPACE = NAMESPACE
    return gitlab_server


def project_path(version: Version) -> str:
    return f"{NAMESPACE}/{version.record.public_id}"


def version_files(version: Version) -> dict[str, bytes]:
    files = {}
    for version_file in version.files.select_related("blob"):
        with open_blob(version_file.blob.storage_key) as handle:
            files[version_file.path] = handle.read()
    return files


def publish_next(version: Version, owner, moderator, *, replace: dict[str, bytes], delete: list[str] = ()) -> Version:
    draft = version_new_draft(record=version.record, actor=owner)
    for path in delete:
        draft_file_delete(version=draft, actor=owner, path=path)
    for path, content in replace.items():
        if draft.files.filter(path=path).exists():
            draft_file_delete(version=draft, actor=owner, path=path)
        draft_file_upload(version=draft, actor=owner, path=path, stream=io.BytesIO(content),
                          content_length=len(content))
    accept(draft, moderator)
    sync_pending()
    draft.refresh_from_db()
    return draft


def test_publishing_queues_the_mirror_after_commit_only_when_enabled(user, other_user, settings, monkeypatch,
                                                                     django_capture_on_commit_callbacks):
    queued = []
    monkeypatch.setattr(tasks.gitlab_mirror_task, "delay", lambda pk: queued.append(pk))
    settings.GITLAB_MIRROR_ENABLED = False
    with django_capture_on_commit_callbacks(execute=True):
        published_version(user, other_user)
    assert queued == []

    settings.GITLAB_MIRROR_ENABLED = True
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        version = published_version(user, other_user)

    assert queued == [version.pk]
    assert callbacks  # queued on commit, not inside the publishing transaction


def test_a_published_version_is_pushed_and_tagged_with_its_doi_and_citation(user, other_user, mirror):
    version = published_version(user, other_user)

    assert version_mirror(version_pk=version.pk) == "tagged"

    project = mirror.project(project_path(version))
    assert project is not None and project["visibility"] == "public"
    assert project["jobs_enabled"] is False  # a .gitlab-ci.yml among the files must never run
    assert mirror.files_at(project_path(version)) == version_files(version)
    tag = mirror.tags(project_path(version))["v1"]
    assert tag["annotated"] and version.doi in tag["message"] and "Cite as:" in tag["message"]
    assert version.title in tag["message"] and "Doe" in tag["message"]
    assert mirror.files_at(project_path(version), "v1") == version_files(version)
    assert AuditEvent.objects.filter(action="version.mirror", version=version).count() == 1


def test_a_new_version_replaces_the_files_and_earlier_tags_stay(user, other_user, mirror):
    first = published_version(user, other_user)
    version_mirror(version_pk=first.pk)
    second = publish_next(first, user, other_user, replace={"thermal.ipynb": notebook_bytes(cells=3),
                                                            "NOTES.md": b"# Notes\n"}, delete=["data/measurements.csv"])

    assert version_mirror(version_pk=second.pk) == "tagged"

    path = project_path(second)
    assert set(mirror.tags(path)) == {"v1", "v2"}
    assert mirror.files_at(path, "v1") == version_files(first)
    assert mirror.files_at(path, "v2") == version_files(second) == mirror.files_at(path)
    assert "data/measurements.csv" not in mirror.files_at(path)
    assert second.doi in mirror.tags(path)["v2"]["message"] and first.doi not in mirror.tags(path)["v2"]["message"]


def test_mirroring_twice_is_done_once(user, other_user, mirror):
    version = published_version(user, other_user)
    version_mirror(version_pk=version.pk)
    commits_before = _commit_posts(mirror)

    assert version_mirror(version_pk=version.pk) == "exists"

    assert _commit_posts(mirror) == commits_before == 1
    assert set(mirror.tags(project_path(version))) == {"v1"}


def test_a_retry_after_the_tag_failed_tags_the_commit_already_made(user, other_user, mirror):
    version = published_version(user, other_user)
    mirror.fail_next(1, 503, path_contains="/repository/tags", method="POST")

    with pytest.raises(GitLabUnavailable):
        version_mirror(version_pk=version.pk)
    assert version_mirror(version_pk=version.pk) == "tagged"

    assert _commit_posts(mirror) == 1  # no second commit: the branch already held these files
    assert mirror.files_at(project_path(version), "v1") == version_files(version)


def test_the_task_retries_while_gitlab_is_down_and_then_mirrors(user, other_user, mirror):
    version = published_version(user, other_user)
    mirror.fail_next(2, 502)

    result = tasks.gitlab_mirror_task.apply(args=[version.pk])  # eager: the retries run at once

    assert result.get() == "tagged"
    assert "v1" in mirror.tags(project_path(version))


def test_an_existing_project_is_reused_and_unpublished_versions_are_skipped(user, other_user, mirror):
    version = published_version(user, other_user)
    client = GitLabClient(mirror.url, mirror.token)
    existing = client.project_ensure(namespace=NAMESPACE, path=version.record.public_id, name="kept")
    draft = version_new_draft(record=version.record, actor=user)

    assert version_mirror(version_pk=draft.pk, client=client) == "skipped"
    assert version_mirror(version_pk=version.pk, client=client) == "tagged"
    assert mirror.project(project_path(version))["id"] == existing.id


def _commit_posts(server) -> int:
    return sum(1 for request in server.requests if request.method == "POST" and request.path.split("?")[0].endswith(
        "/repository/commits"))


def test_a_version_whose_files_are_closed_is_not_pushed(user, other_user, mirror):
    from repository.models import FileAccess

    version = published_version(user, other_user)
    Version.objects.filter(pk=version.pk).update(access_files=FileAccess.RESTRICTED)
    client = GitLabClient(mirror.url, mirror.token)

    assert version_mirror(version_pk=version.pk, client=client) == "closed"
    assert list(mirror.requests) == []  # not even a project made for it
    assert not AuditEvent.objects.filter(action="version.mirror", version=version).exists()

    Version.objects.filter(pk=version.pk).update(access_files=FileAccess.OPEN)  # opened: now it is mirrored
    assert version_mirror(version_pk=version.pk, client=client) == "tagged"


def test_lifting_an_embargo_queues_the_mirror_of_the_opened_version(user, other_user, mirror, monkeypatch,
                                                                    django_capture_on_commit_callbacks):
    import datetime

    from repository.models import FileAccess
    from repository.services.embargoes import embargo_lift

    version = published_version(user, other_user)
    Version.objects.filter(pk=version.pk).update(access_files=FileAccess.EMBARGOED,
                                                 embargo_until=datetime.date.today() + datetime.timedelta(days=30))
    queued = []
    monkeypatch.setattr(tasks.gitlab_mirror_task, "delay", lambda pk: queued.append(pk))

    with django_capture_on_commit_callbacks(execute=True):
        embargo_lift(version=version, actor=user)

    assert queued == [version.pk]
