"""The GitLab mirror of published versions (GITLAB_MIRROR_ENABLED).

On publication (`version_publish`, after its transaction commits) `gitlab_mirror_task` calls `version_mirror`:
the record's project `<GITLAB_MIRROR_NAMESPACE>/<record id>` is created when missing; the version's files replace
the files of its default branch in one commit; the commit is tagged `v<number>` with the DOI and the citation in
the tag's message. Earlier tags stay, so every version stays reachable.

Files closed to the public (embargoed, restricted: repository.access.policy) are never pushed: the mirror is a
public copy, whatever the project's visibility. Such a version is left out ("closed") and mirrored when its files
open (`version_access_changed`: an embargo lifted, or a correction that opens the files).

Idempotent: a tag `v<number>` that exists means done. A retry after a commit whose tag was not made finds the
branch already holding the version's files (compared by git blob id), makes no second commit and tags the head.
Raises GitLabUnavailable (retry later) or another GitLabError (a configuration problem); never runs inside a
transaction.
"""

import hashlib
import logging

from django.conf import settings
from django.db import transaction

from repository import storage
from repository.access.policy import files_are_open
from repository.exports.citation import version_citation
from repository.gitlab.client import GitLabClient, GitLabError
from repository.models import Version
from repository.services.audit import audit_event_append
from repository.services.dois import doi_url

logger = logging.getLogger(__name__)

MIRRORED_STATES = (Version.State.PUBLISHING, Version.State.PUBLISHED)
MB = 1024 * 1024


def version_mirror_enqueue(version: Version) -> None:
    """Inside the publishing transaction: mirror the version once it commits (nothing when the mirror is off)."""
    if not settings.GITLAB_MIRROR_ENABLED:
        return
    from repository.gitlab.tasks import gitlab_mirror_task

    version_pk = version.pk
    transaction.on_commit(lambda: gitlab_mirror_task.delay(version_pk))


def version_mirror_on_access_change(*, version: Version, after: dict | None = None, **_) -> None:
    """An embargo lifted or files opened by a correction: mirror the version now that it may be pushed (the task
    checks again, after the commit, whether the files are open)."""
    if files_are_open(version):
        version_mirror_enqueue(version)


def mirror_tag_name(version: Version) -> str:
    return f"v{version.number}"


def mirror_tag_message(version: Version) -> str:
    try:
        citation = version_citation(version)
    except (ValueError, KeyError):  # a citation is a courtesy; the DOI is what the tag must carry
        logger.warning("no citation for %s", version, exc_info=True)
        citation = ""
    lines = [f"{version.title or version.record.public_id} (version {version.number})", "",
             f"DOI: {version.doi}", f"{doi_url(version.doi)}" if version.doi else ""]
    if version.record.concept_doi:
        lines.append(f"All versions: {version.record.concept_doi}")
    if citation:
        lines += ["", "Cite as:", citation]
    return "\n".join(lines).strip() + "\n"


def version_mirror(*, version_pk: int, client: GitLabClient | None = None) -> str:
    """Mirror one published version; returns "tagged", "exists", "skipped" (not published, or gone) or "closed"
    (its files are not open to everyone)."""
    version = Version.objects.select_related("record").filter(pk=version_pk).first()
    if version is None or version.state not in MIRRORED_STATES:
        return "skipped"
    if not files_are_open(version):
        return "closed"
    client = client or GitLabClient.from_settings()
    record = version.record
    project = client.project_ensure(namespace=settings.GITLAB_MIRROR_NAMESPACE, path=record.public_id,
                                    name=record.public_id,
                                    description=f"nbarchive mirror of {record.public_id}: {version.title}"[:2000],
                                    visibility=settings.GITLAB_MIRROR_VISIBILITY,
                                    # A version may hold a .gitlab-ci.yml: the mirror must never run it.
                                    ci_enabled=False)
    tag_name = mirror_tag_name(version)
    if client.tag(project.id, tag_name) is not None:
        return "exists"
    branch = project.default_branch or "main"
    current = {entry.path: entry.id for entry in (client.tree(project.id, branch) if project.default_branch else [])
               if entry.type == "blob"}
    files, left_out = _changed_files(version, current)
    wanted = set(version.files.values_list("path", flat=True)) - set(left_out)
    deleted = {path for path in current if path not in wanted}
    if files or deleted or not project.default_branch:
        message = f"{record.public_id} version {version.number}: {version.title}\n\nDOI: {version.doi}\n\n[skip ci]\n"
        if left_out:
            message += "\nLeft out of the mirror (too large; download them from the archive):\n" + "\n".join(
                f"- {path}" for path in left_out) + "\n"
        sha = client.commit(project.id, branch=branch, message=message, files=files,
                            existing=set(files) & set(current), deleted=deleted)
    else:
        sha = client.commit_sha(project.id, branch)
    try:
        client.tag_create(project.id, name=tag_name, ref=sha, message=mirror_tag_message(version))
    except GitLabError:
        if client.tag(project.id, tag_name) is not None:  # made by a concurrent attempt
            return "exists"
        raise
    with transaction.atomic():
        audit_event_append(actor=None, action="version.mirror", version=version,
                           data={"project": project.path_with_namespace, "tag": tag_name, "commit": sha})
    return "tagged"


def _changed_files(version: Version, current: dict[str, str]) -> tuple[dict[str, bytes], list[str]]:
    """The version's files whose bytes the branch does not hold yet, and those too large to mirror."""
    limit = int(settings.GITLAB_MIRROR_MAX_FILE_MB * MB)
    files: dict[str, bytes] = {}
    left_out: list[str] = []
    for version_file in version.files.select_related("blob").order_by("path"):
        blob = version_file.blob
        if blob.size > limit:
            left_out.append(version_file.path)
            continue
        with storage.open_blob(blob.storage_key) as handle:
            content = handle.read()
        if current.get(version_file.path) == git_blob_id(content):
            continue
        files[version_file.path] = content
    return files, left_out


def git_blob_id(content: bytes) -> str:
    """The id git gives these bytes as a blob (what GitLab's tree lists)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()
