"""New versions from GitLab: an owner links a record to a GitLab project; a tag pushed there (webhook), or an
import request with a ref, becomes a new version draft holding the files at that ref, with a reserved DOI, ready
for the owner to review and submit.

- `gitlab_link_set` / `gitlab_link_remove`: the link, with a webhook secret shown once (only its sha256 is kept).
  Only public projects may be linked (GITLAB_IMPORT_PUBLIC_ONLY): our token may read projects the owner cannot.
- `gitlab_webhook_receive`: checks `X-Gitlab-Token` in constant time against the link's secret (or the
  instance-wide GITLAB_WEBHOOK_SECRET), ignores everything but the push of a new tag, and requests its import.
- `gitlab_import_request`: one GitLabImport row per (record, project, ref) (a unique constraint): the same tag twice is
  one import and one draft. A failed import, or one whose draft was discarded, is tried again when asked again.
  The work happens in `gitlab_import_task`, after commit.
- `gitlab_import_execute`: resolves the ref, starts the draft (version_new_draft: metadata copied from the latest
  published version, a new reserved DOI), replaces its files with the files at that commit, each streamed from
  GitLab into storage through the files service, and labels the draft with the tag. Errors that retrying cannot
  fix end the import as failed with the message; GitLabUnavailable is raised for the task to retry.
"""

import hashlib
import secrets

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from repository.errors import Conflict, InvalidInput, NbarchiveError, NotFound, PermissionDenied
from repository.gitlab.client import GitLabClient, GitLabError, GitLabNotFound, GitLabUnavailable
from repository.gitlab.models import GitLabImport, GitLabLink
from repository.models import Record, Version
from repository.permissions import can_link_gitlab, is_owner
from repository.services.audit import audit_event_append
from repository.services.files import draft_file_delete, draft_file_upload
from repository.services.new_versions import version_new_draft

TAG_PUSH_EVENT = "Tag Push Hook"
ZERO_SHA = "0" * 40
SYMLINK_MODE = "120000"
MAX_REF_LENGTH = 255


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# --- the link ------------------------------------------------------------------------------------------------------


def gitlab_link_set(*, record: Record, actor, project: str,
                    client: GitLabClient | None = None) -> tuple[GitLabLink, str]:
    """Link (or re-link) the record to a GitLab project; returns the link and its new webhook secret, which is
    shown this once. Raises PermissionDenied, InvalidInput (no such project, not public), Conflict (the project is
    linked to another record), GitLabUnavailable."""
    if not can_link_gitlab(actor, record):
        raise PermissionDenied("Only the owners of a record can link it to a GitLab project.")
    project = (project or "").strip()
    if not project or len(project) > 255 or any(char.isspace() for char in project):
        raise InvalidInput("Name the GitLab project as namespace/project or by its numeric id.",
                           field_errors={"project": ["Enter namespace/project or a numeric id."]})
    client = client or GitLabClient.from_settings()
    try:
        info = client.project(int(project) if project.isdigit() else project)
    except GitLabNotFound:
        raise InvalidInput(f"GitLab has no project '{project}' that nbarchive can see.",
                           field_errors={"project": ["No such project (or it is not public)."]}) from None
    if settings.GITLAB_IMPORT_PUBLIC_ONLY and info.visibility != "public":
        raise InvalidInput(f"The GitLab project '{info.path_with_namespace}' is not public; only public projects can "
                           "be linked.", field_errors={"project": ["The project is not public."]})
    secret = secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            link, _ = GitLabLink.objects.update_or_create(
                record=record, defaults={"project_id": info.id, "project_path": info.path_with_namespace,
                                         "web_url": info.web_url[:500], "webhook_secret_hash": _secret_hash(secret),
                                         "created_by": actor})
            audit_event_append(actor=actor, action="record.gitlab_link", record=record,
                               data={"project": info.path_with_namespace, "project_id": info.id})
    except IntegrityError:
        raise Conflict(f"The GitLab project '{info.path_with_namespace}' is linked to another record.") from None
    return link, secret


@transaction.atomic
def gitlab_link_remove(*, record: Record, actor) -> None:
    if not can_link_gitlab(actor, record):
        raise PermissionDenied("Only the owners of a record can unlink it from GitLab.")
    deleted, _ = GitLabLink.objects.filter(record=record).delete()
    if not deleted:
        raise NotFound("The record is not linked to a GitLab project.")
    audit_event_append(actor=actor, action="record.gitlab_unlink", record=record)


# --- the webhook ---------------------------------------------------------------------------------------------------


def gitlab_webhook_receive(*, token: str, event: str, payload: dict) -> tuple[str, GitLabImport | None]:
    """A GitLab webhook delivery. Returns ("queued" | "known" | "ignored", the import). PermissionDenied when the
    token is wrong (the same answer whether or not the project is linked)."""
    payload = payload if isinstance(payload, dict) else {}
    project = payload.get("project")  # anyone may post here: no shape is assumed
    project_id = payload.get("project_id") or (project.get("id") if isinstance(project, dict) else None)
    link = None
    if isinstance(project_id, int):
        link = GitLabLink.objects.select_related("record").filter(project_id=project_id).first()
    # Compared even without a link, so the time taken does not tell which projects are linked.
    expected = link.webhook_secret_hash if link else _secret_hash(secrets.token_urlsafe(32))
    token = token or ""
    valid = constant_time_compare(_secret_hash(token), expected)
    if settings.GITLAB_WEBHOOK_SECRET and constant_time_compare(token, settings.GITLAB_WEBHOOK_SECRET):
        valid = True
    if not token or not valid:
        raise PermissionDenied("The X-Gitlab-Token header does not match the webhook secret.")
    if link is None or event != TAG_PUSH_EVENT or payload.get("object_kind") != "tag_push":
        return "ignored", None
    ref = str(payload.get("ref") or "")
    if not ref.startswith("refs/tags/") or not payload.get("checkout_sha") or payload.get("after") == ZERO_SHA:
        return "ignored", None  # a deleted tag
    row, created = gitlab_import_request(record=link.record, actor=None, ref=ref.removeprefix("refs/tags/"),
                                         source=GitLabImport.Source.WEBHOOK)
    return ("queued" if created else "known"), row


# --- imports -------------------------------------------------------------------------------------------------------


def gitlab_import_request(*, record: Record, actor, ref: str, source: str,
                          project: str | None = None) -> tuple[GitLabImport, bool]:
    """Ask for the import of `ref` of the record's linked project; returns (import, queued now). An actor must be
    an owner (None: a verified webhook). Raises PermissionDenied, Conflict (not linked, another project),
    InvalidInput (a ref git would not accept)."""
    from repository.gitlab.tasks import gitlab_import_task

    if actor is not None and not is_owner(actor, record):
        raise PermissionDenied("Only the owners of a record can import a new version.")
    link = GitLabLink.objects.filter(record=record).first()
    if link is None:
        raise Conflict("Link the record to a GitLab project first (PUT /api/records/{id}/gitlab).")
    if project and str(project).strip() not in (str(link.project_id), link.project_path):
        raise Conflict(f"The record is linked to '{link.project_path}', not to '{project}'.",
                       field_errors={"project": ["Not the linked project."]})
    ref = _checked_ref(ref)
    with transaction.atomic():
        Record.objects.select_for_update().get(pk=record.pk)  # one request per record at a time decides
        row = GitLabImport.objects.select_for_update().filter(record=record, project_id=link.project_id,
                                                              ref=ref).first()
        if row is None:
            row = GitLabImport.objects.create(record=record, project_id=link.project_id, ref=ref, source=source,
                                              requested_by=actor if getattr(actor, "is_authenticated", False) else None)
        elif row.status == GitLabImport.Status.FAILED or (row.status == GitLabImport.Status.DONE
                                                           and row.version_id is None):
            # Failed, or its draft was discarded since: asked again, try again.
            row.status, row.message, row.finished_at = GitLabImport.Status.PENDING, "", None
            row.save(update_fields=["status", "message", "finished_at"])
        else:
            return row, False
        audit_event_append(actor=actor, action="version.gitlab_import_request", record=record,
                           data={"ref": ref, "project": link.project_path, "source": source})
        row_pk = row.pk
        transaction.on_commit(lambda: gitlab_import_task.delay(row_pk))
    return row, True


def _checked_ref(ref: str) -> str:
    ref = (ref or "").strip()
    bad = (not ref or len(ref) > MAX_REF_LENGTH or any(char.isspace() or not char.isprintable() for char in ref)
           or ".." in ref or ref.startswith(("-", "/")) or any(char in ref for char in "~^:?*[\\"))
    if bad:
        raise InvalidInput(f"'{ref[:100]}' is not a tag, branch or commit name.",
                           field_errors={"ref": ["Not a valid git ref."]})
    return ref


def gitlab_import_execute(*, import_pk: int, client: GitLabClient | None = None) -> GitLabImport | None:
    """Carry out a pending import (idempotent: a done one is returned as it is). GitLabUnavailable is raised for
    the task to retry; every other failure ends the import as failed, with the message."""
    row = GitLabImport.objects.select_related("record").filter(pk=import_pk).first()
    if row is None or row.status != GitLabImport.Status.PENDING:
        return row
    try:
        _import(row, client or GitLabClient.from_settings())
    except GitLabUnavailable:
        raise
    except NbarchiveError as exc:
        gitlab_import_mark_failed(import_pk=row.pk, message=exc.detail)
    return GitLabImport.objects.get(pk=row.pk)


def gitlab_import_mark_failed(*, import_pk: int, message: str) -> None:
    GitLabImport.objects.filter(pk=import_pk, status=GitLabImport.Status.PENDING).update(
        status=GitLabImport.Status.FAILED, message=f"The import failed: {message}"[:2000], finished_at=timezone.now())


def _import(row: GitLabImport, client: GitLabClient) -> None:
    record = row.record
    link = GitLabLink.objects.filter(record=record).first()
    if link is None or link.project_id != row.project_id:
        raise Conflict("The record is no longer linked to the project this import was asked from.")
    actor = _acting_owner(row, link, record)
    sha = client.commit_sha(link.project_id, row.ref)
    entries = [entry for entry in client.tree(link.project_id, sha) if entry.type == "blob"]
    skipped = [entry.path for entry in entries if entry.mode == SYMLINK_MODE]
    entries = [entry for entry in entries if entry.mode != SYMLINK_MODE]
    if not entries:
        raise InvalidInput(f"'{row.ref}' of {link.project_path} holds no files.")
    if len(entries) > settings.MAX_FILES_PER_VERSION:
        raise InvalidInput(f"'{row.ref}' of {link.project_path} holds {len(entries)} files; a version may hold at "
                           f"most {settings.MAX_FILES_PER_VERSION}.")
    draft = _draft_for(row, record, actor, sha)
    previous_notebook = draft.notebook_path
    for path in list(draft.files.values_list("path", flat=True)):
        draft_file_delete(version=draft, actor=actor, path=path)
    # The notebook the previous version ran goes first, so that it stays the one that is verified.
    entries.sort(key=lambda entry: (entry.path != previous_notebook, entry.path))
    for entry in entries:
        with client.open_file(link.project_id, entry.path, sha) as stream:
            try:
                draft_file_upload(version=draft, actor=actor, path=entry.path, stream=stream, content_length=None)
            except InvalidInput as exc:
                if isinstance(exc.__cause__, GitLabError):  # the download broke, not the file: say so (and retry)
                    raise exc.__cause__ from exc
                raise
    with transaction.atomic():
        draft = Version.objects.select_for_update().get(pk=draft.pk)
        if not draft.version_label:
            draft.version_label = row.ref[:50]
            draft.save(update_fields=["version_label", "updated"])
        message = f"Imported {len(entries)} files from {link.project_path} at {row.ref} ({sha[:12]})."
        if skipped:
            message += f" Symbolic links were left out: {', '.join(skipped)[:500]}."
        GitLabImport.objects.filter(pk=row.pk).update(status=GitLabImport.Status.DONE, sha=sha, version=draft,
                                                      message=message, finished_at=timezone.now())
        audit_event_append(actor=actor, action="version.gitlab_import", version=draft,
                           data={"project": link.project_path, "ref": row.ref, "sha": sha, "files": len(entries)})


def _acting_owner(row: GitLabImport, link: GitLabLink, record: Record):
    """Who the draft is made for: the requester, else the owner who linked the project, else any owner."""
    for user in (row.requested_by, link.created_by):
        if user is not None and is_owner(user, record):
            return user
    owner = record.owners.order_by("pk").first()
    if owner is None:
        raise Conflict("The record has no owner to make the draft for.")
    return owner


def _draft_for(row: GitLabImport, record: Record, actor, sha: str) -> Version:
    """The import's draft: the one an earlier attempt made (still a draft), else a new version draft."""
    with transaction.atomic():
        row = GitLabImport.objects.select_for_update().get(pk=row.pk)
        if row.version_id is not None:
            draft = Version.objects.filter(pk=row.version_id, state=Version.State.DRAFT).first()
            if draft is not None:
                return draft
        draft = version_new_draft(record=record, actor=actor)
        row.version, row.sha = draft, sha
        row.save(update_fields=["version", "sha"])
        return draft
