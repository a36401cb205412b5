"""Deposit pages: thin views over the same services and selectors as the REST API.

A draft someone may not see answers 404 (never a hint that it exists); service errors become form errors or a
message, never a 500. Files are uploaded by the browser straight to the REST API (see static upload.js), so
large uploads stream to storage instead of going through Django's form upload handlers.
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.db.models import F
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from repository import hooks, selectors
from repository.access.http import request_can_read_files
from repository.access.serving import (
    closed_files_message,
    private_unless_open,
    report_without_content,
    run_message,
)
from repository.errors import Conflict, InvalidInput, NbarchiveError, NotFound, PermissionDenied, TooManyRequests
from repository.models import AccessToken, Version
from repository.permissions import can_edit_draft, can_request_run, can_view_draft, is_owner
from repository.services import drafts, files
from repository.services import tokens as token_services
from repository.services.new_versions import draft_discard
from repository.services.reverification import verification_history
from repository.services.runs import run_cancel, run_request
from repository.services.submission import draft_missing_for_submission
from repository.web import search
from repository.web.deposit import DepositForm, deposit_page_context
from repository.web.forms import NewUploadForm, TokenCreateForm
from repository.web.references import data_references_described


def home(request):
    return render(request, "repository/home.html", {"newest": search.newest_records(),
                                                    "communities": hooks.communities_listed()})


@login_required
def my_uploads(request):
    versions = list(selectors.records_list_for_user(user=request.user))
    # Records readers can already see (an accepted version: publishing, published or withdrawn) link to their
    # landing page.
    public = set(Version.objects.filter(record__in=[v.record_id for v in versions],
                                        state__in=Version.ACCEPTED_STATES)
                 .values_list("record_id", flat=True))
    for version in versions:
        version.has_public_versions = version.record_id in public
    return render(request, "repository/my_uploads.html", {"versions": versions})


@login_required
@require_http_methods(["GET", "POST"])
def draft_new(request):
    form = NewUploadForm(_posted(request))
    if request.method == "POST" and form.is_valid():
        title = form.cleaned_data["title"]
        try:
            version = drafts.record_create(owner=request.user, metadata={"title": title} if title else None)
        except InvalidInput as exc:
            _add_errors_to_form(form, exc)
        else:
            messages.success(request, f"Draft {version.record.public_id} created. Describe it, then add its files.")
            return redirect("repository:draft_edit", record_id=version.record.public_id)
    return render(request, "repository/draft_new.html", {"form": form})


def _draft_or_404(request, record_id: str) -> Version:
    try:
        return selectors.draft_get_for_user(record_id=record_id, user=request.user)
    except NotFound as exc:
        raise Http404(exc.detail) from None


def _published_instead(request, record_id: str):
    """A redirect to the landing page when the record has no draft any more but is public: the submitter's
    bookmarked draft URL after publication. None otherwise (the caller answers 404 as before)."""
    if Version.objects.filter(record__public_id=record_id, state__in=Version.UNPUBLISHED_STATES).exists():
        return None
    if not Version.objects.filter(record__public_id=record_id, state__in=Version.ACCEPTED_STATES).exists():
        return None
    messages.info(request, "This upload has been published; this is its public page.")
    return redirect("repository:record_landing", record_id=record_id)


@login_required
def draft_detail(request, record_id):
    try:
        version = selectors.draft_get_for_user(record_id=record_id, user=request.user)
    except NotFound as exc:
        if (published := _published_instead(request, record_id)) is not None:
            return published
        raise Http404(exc.detail) from None
    version = selectors.draft_with_details(version)
    runs = list(selectors.runs_list_for_version(version=version)[:10])
    owner = is_owner(request.user, version.record)
    context = {
        "version": version,
        "record_id": version.record.public_id,
        "files": list(version.files.all()),
        "uploads": selectors.uploads_list_for_draft(version=version),
        "missing": draft_missing_for_submission(version),
        "described_references": data_references_described(version),
        "can_edit": can_edit_draft(request.user, version),
        "is_owner": owner,
        "can_rerun": (can_request_run(request.user, version) and bool(version.notebook_path)
                      and not any(run.is_active for run in runs)),
        "can_cancel_runs": can_request_run(request.user, version),
        "runs": runs,
        "review": hooks.review_of(version),
        "has_public_versions": version.record.versions.filter(state__in=Version.ACCEPTED_STATES).exists(),
        "can_discard": owner and version.state == Version.State.DRAFT,
        "upload_url": reverse("api:draft_files", kwargs={"record_id": version.record.public_id}),
        "uploads_url": reverse("api:draft_uploads", kwargs={"record_id": version.record.public_id}),
        "limits": {
            "part_size": settings.UPLOAD_PART_SIZE,
            "part_concurrency": settings.UPLOAD_BROWSER_PARALLEL_PARTS,
            "file_size": settings.MAX_FILE_SIZE,
            "notebook_size": min(settings.MAX_NOTEBOOK_SIZE, settings.MAX_FILE_SIZE),
            "file_count": settings.MAX_FILES_PER_VERSION,
        },
    }
    return render(request, "repository/draft_detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def draft_edit(request, record_id):
    try:
        version = selectors.draft_get_for_user(record_id=record_id, user=request.user)
    except NotFound as exc:
        if request.method == "GET" and (published := _published_instead(request, record_id)) is not None:
            return published
        raise Http404(exc.detail) from None
    version = selectors.draft_with_details(version)
    if request.method == "GET":
        return _render_edit(request, version, DepositForm(version))

    deposit = DepositForm(version, request.POST)
    if deposit.is_valid():
        try:
            drafts.draft_update(version=version, actor=request.user, metadata=deposit.metadata())
        except InvalidInput as exc:
            deposit.add_service_errors(exc.field_errors or {"non_field_errors": [exc.detail]})
        except Conflict as exc:
            messages.error(request, exc.detail)
            return redirect("repository:my_uploads")
        else:
            messages.success(request, "Saved.")
            return redirect("repository:draft_detail", record_id=record_id)
    return _render_edit(request, version, deposit)


def _render_edit(request, version: Version, deposit: DepositForm):
    return render(request, "repository/draft_edit.html", deposit_page_context(version, deposit))


@login_required
@require_POST
def draft_file_delete_view(request, record_id):
    version = _draft_or_404(request, record_id)
    path = request.POST.get("path", "")
    try:
        files.draft_file_delete(version=version, actor=request.user, path=path)
    except (NotFound, Conflict, PermissionDenied) as exc:
        # A second click on the same button, or a draft submitted in another tab: say so, do not fail.
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"Deleted {path}.")
    return redirect("repository:draft_detail", record_id=record_id)


@login_required
@require_POST
def draft_submit(request, record_id):
    version = _draft_or_404(request, record_id)
    try:
        hooks.submit_for_review(version=version, actor=request.user)
    except (InvalidInput, Conflict, PermissionDenied, TooManyRequests) as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, "Submitted for review. The notebook is being re-executed; the result appears below.")
    return redirect("repository:draft_detail", record_id=record_id)


@login_required
@require_POST
def draft_rerun(request, record_id):
    version = _draft_or_404(request, record_id)
    if not can_request_run(request.user, version):
        raise Http404("No draft you can re-run.")
    try:
        run_request(version=version, requested_by=request.user)
    except Conflict as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, "A new verification run is queued.")
    return redirect("repository:draft_detail", record_id=record_id)


@login_required
@require_POST
def run_cancel_view(request, run_id):
    try:
        run = selectors.run_get_for_user(run_id=run_id, user=request.user)
    except NotFound:
        raise Http404("No run you can see.") from None
    try:
        run_cancel(run=run, actor=request.user)
    except NbarchiveError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, "The verification run is cancelled.")
    return redirect("repository:draft_detail", record_id=run.version.record.public_id)


@login_required
@require_POST
def draft_discard_view(request, record_id):
    version = _draft_or_404(request, record_id)
    try:
        record = draft_discard(version=version, actor=request.user)
    except NbarchiveError as exc:
        messages.error(request, exc.detail)
        return redirect("repository:draft_detail", record_id=record_id)
    if record is None:
        messages.success(request, f"The draft {record_id} was discarded, and its reserved DOI {version.doi} with it.")
        return redirect("repository:my_uploads")
    messages.success(request, f"The draft of version {version.number} was discarded, and its reserved DOI "
                              f"{version.doi} with it. The earlier versions are unchanged.")
    return redirect("repository:record_landing", record_id=record_id)


STATUS_LABELS = {
    "identical": "Identical", "within_tolerance": "Within tolerance", "differs": "Differs", "skipped": "Skipped",
    "expected_error": "Expected error", "no_stored_output": "No stored output", "not_executed": "Not executed",
    "missing": "Missing", "unexpected": "Unexpected",
}


def run_report(request, run_id):
    """The reproducibility report: public for an accepted version's finished runs (the landing page's verdict
    links here), otherwise for the owners and moderators, who are sent to sign in first."""
    try:
        run = selectors.run_get_for_user(run_id=run_id, user=request.user)
    except NotFound as exc:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        raise Http404(exc.detail) from None
    # The public report of a version whose files are closed to this reader: the verdict and how each cell
    # compared, but no source, outputs, diffs, logs or executed notebook.
    files_readable = request_can_read_files(request, run.version)
    report = (run.report or {}) if files_readable else report_without_content(run.report)
    for cell in report.get("cells", []):
        cell["status_label"] = STATUS_LABELS.get(cell.get("status"), cell.get("status", ""))
        for output in cell.get("outputs", []):
            output["status_label"] = STATUS_LABELS.get(output.get("status"), output.get("status", ""))
    tolerance = report.get("tolerance") or {}
    context = {
        "run": run,
        "run_message": run_message(run, files_readable=files_readable),
        "version": run.version,
        # Readers reach a public report from the landing page; only those who may see the draft go back to it.
        "can_view_draft": can_view_draft(request.user, run.version),
        "files_readable": files_readable,
        "files_closed_message": "" if files_readable else closed_files_message(run.version),
        "record_id": run.version.record.public_id,
        "report": report,
        "cells": report.get("cells", []),
        "execution": report.get("execution", {}),
        "environment": report.get("environment") or run.environment,
        "summary": report.get("summary", {}),
        "notes": report.get("notes", []),
        # A published version's latest result, its date, what changed and the history of re-verifications.
        "verification": (verification_history(run.version, files_readable=files_readable)
                         if run.version.state == Version.State.PUBLISHED
                         else None),
        "tolerance": {
            "rtol": f"{tolerance.get('rtol', 0):g}", "atol": f"{tolerance.get('atol', 0):g}",
            "pixel_tolerance": tolerance.get("pixel_tolerance"),
            "differing_percent": f"{100 * tolerance.get('max_differing_pixels', 0):g} %",
        } if tolerance else None,
    }
    return private_unless_open(render(request, "repository/run_report.html", context), run.version)


@login_required
@require_http_methods(["GET", "POST"])
def tokens(request):
    form = TokenCreateForm(_posted(request))
    created = None
    if request.method == "POST" and form.is_valid():
        try:
            token, raw = token_services.token_create(user=request.user, name=form.cleaned_data["name"])
        except InvalidInput as exc:
            _add_errors_to_form(form, exc)
        else:
            # Rendered, not redirected: the raw token exists only in this response and is never stored.
            created = {"token": token, "raw": raw}
            form = TokenCreateForm()
    context = {
        "form": form,
        "created": created,
        # Active tokens first (PostgreSQL sorts NULLs last by default), newest first within each group.
        "tokens": AccessToken.objects.filter(user=request.user).order_by(
            F("revoked_at").asc(nulls_first=True), "-created"
        ),
    }
    return render(request, "repository/tokens.html", context)


@login_required
@require_POST
def token_revoke(request, token_id):
    try:
        token_services.token_revoke(user=request.user, token_id=token_id)
    except NotFound:
        raise Http404("No such active token.") from None
    messages.success(request, "The token was revoked; programs using it can no longer sign in with it.")
    return redirect("repository:tokens")


def _posted(request):
    # Not `request.POST or None`: an empty POST is still a submission and must be validated as one.
    return request.POST if request.method == "POST" else None


def _add_errors_to_form(form, exc: InvalidInput) -> None:
    for field, field_messages in (exc.field_errors or {}).items():
        form.add_error(field if field in form.fields else None, field_messages)
    if not exc.field_errors:
        form.add_error(None, exc.detail)
