"""Moderator and author pages for review requests: the queue and one request with its decision form.

Thin views over moderation.services and moderation.selectors; refusals become messages, never a 500.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_POST, require_safe

from moderation import corrections, selectors, services, workflow
from moderation.diff import cell_changes, previous_published, version_diff
from moderation.models import Community, ReviewRequest
from moderation.permissions import can_comment, can_moderate
from repository import rendering, storage
from repository.errors import InvalidInput, NbarchiveError, NotFound
from repository.models import Verdict, Version
from repository.selectors import version_metadata
from repository.services.dois import doi_url
from repository.services.submission import draft_missing_for_submission

ACTION_LABELS = {"accept": "Accept", "request_changes": "Request changes", "decline": "Decline",
                 "resubmit": "Resubmit", "cancel": "Withdraw submission"}


def _request_or_404(request, request_id) -> ReviewRequest:
    try:
        return selectors.request_get_for_user(request_id=request_id, user=request.user)
    except NotFound as exc:
        raise Http404(exc.detail) from None


@login_required
def queue(request):
    params = request.GET
    state = params.get("state") or None
    try:
        older_than_days = selectors.older_than_days_parse(params.get("older_than"))
        filter_error = ""
    except InvalidInput as exc:  # a hand-edited URL: show the queue without that filter, and say why
        older_than_days, filter_error = None, exc.detail
    requests = selectors.request_queue(user=request.user, state=state, community=params.get("community") or None,
                                       verdict=params.get("verdict") or None, older_than_days=older_than_days,
                                       order=params.get("order") or "-created")
    context = {
        "requests": list(requests[:200]),
        "states": ReviewRequest.State.choices,
        "verdicts": Verdict.choices,
        "communities": Community.objects.all(),
        "age_choices": [("1", "Waiting over a day"), ("7", "Over a week"), ("30", "Over a month")],
        "filters": {key: params.get(key, "") for key in ("state", "community", "verdict", "older_than", "order")},
        "filter_error": filter_error,
    }
    return render(request, "moderation/queue.html", context)


@login_required
def request_detail(request, request_id):
    review = _request_or_404(request, request_id)
    version = review.version
    context = {
        "review": review,
        "version": version,
        "record_id": version.record.public_id,
        "files": list(version.files.select_related("blob")),
        "runs": list(version.runs.defer("logs")[:5]),
        "timeline": selectors.request_timeline(review),
        "allowed_actions": [(action, ACTION_LABELS[action])
                            for action in workflow.allowed_actions(request.user, review)],
        "diff": version_diff(version, reader=request.user),
        "can_moderate": can_moderate(request.user, review),
        "can_comment": can_comment(request.user, review),
        "checklist": [(key, label, bool(review.checklist.get(key))) for key, label in services.CHECKLIST_ITEMS.items()],
        "missing": draft_missing_for_submission(version),
        "pending_corrections": _pending_corrections(review),
        "published": _published_links(version),
    }
    return render(request, "moderation/request_detail.html", context)


@login_required
@require_safe
def cell_diff(request, request_id):
    """The notebook-cells part of the request page alone, polled by cell_diff.js while a worker prepares it:
    202 while it is being prepared, 200 with the diff once it is ready."""
    review = _request_or_404(request, request_id)
    cells = cell_changes(review.version, reader=request.user)
    if cells is None:
        raise Http404("This version has no earlier published version to compare with.")
    previous_number = previous_published(review.version).number
    response = render(request, "moderation/includes/cell_diff.html",
                      {"review": review, "cells": cells, "previous_number": previous_number},
                      status=202 if cells.get("pending") else 200)
    response["Cache-Control"] = "private, no-store"
    return response


def _pending_corrections(review: ReviewRequest) -> list[dict]:
    """Corrections held for review, each with its changes field by field against the metadata as published."""
    if review.state != ReviewRequest.State.ACCEPTED:
        return []
    current = version_metadata(review.version)
    return [{"correction": correction,
             "changes": [{"field": field, "before": selectors.readable_change(field, current.get(field)),
                          "after": selectors.readable_change(field, correction.metadata.get(field))}
                         for field in correction.fields]}
            for correction in corrections.corrections_pending(review)]


@login_required
@require_POST
def correction_decide(request, request_id, correction_id):
    review = _request_or_404(request, request_id)
    decision = request.POST.get("decision", "")
    if decision not in ("approve", "decline"):
        messages.error(request, "Choose approve or decline.")
        return redirect("moderation:request_detail", request_id=review.pk)
    try:
        corrections.correction_decide(correction_id=correction_id, actor=request.user, approve=decision == "approve",
                                      comment=request.POST.get("comment", ""))
    except NbarchiveError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, "Correction applied." if decision == "approve" else "Correction declined.")
    return redirect("moderation:request_detail", request_id=review.pk)


def _published_links(version: Version) -> dict | None:
    """Where an accepted request's version is public now: its landing page and DOI; None before acceptance."""
    if version.state not in Version.ACCEPTED_STATES:
        return None
    return {
        "is_live": version.state == Version.State.PUBLISHED,
        "landing_url": reverse("repository:version_landing", kwargs={"record_id": version.record.public_id,
                                                                     "number": version.number}),
        "doi_url": doi_url(version.doi) if version.doi else "",
    }


@login_required
@require_POST
def request_act(request, request_id):
    review = _request_or_404(request, request_id)
    action = request.POST.get("action", "")
    try:
        services.review_act(request_id=review.pk, action=action, actor=request.user,
                            comment=request.POST.get("comment", ""), checklist=request.POST.getlist("checklist"))
    except NbarchiveError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"Done: {action.replace('_', ' ')}.")
    return redirect("moderation:request_detail", request_id=review.pk)


@login_required
@require_POST
def request_comment(request, request_id):
    review = _request_or_404(request, request_id)
    try:
        services.review_comment(request_id=review.pk, actor=request.user, comment=request.POST.get("comment", ""))
    except NbarchiveError as exc:
        messages.error(request, exc.detail)
    return redirect("moderation:request_detail", request_id=review.pk)


def _notebook_file(review: ReviewRequest):
    """The version's notebook (its VersionFile with the blob), or None when it names none that it has.

    No file-access check here (issue 17): a request is only shown to the version's owners and the moderators of
    its community or all communities (`can_view_request`), who always read its files whatever their access
    (repository.access.policy); tests/repository/access/test_routes.py walks these routes too."""
    version = review.version
    if not version.notebook_path:
        return None
    return version.files.select_related("blob").filter(path=version.notebook_path).first()


@login_required
@require_safe
@xframe_options_sameorigin
def notebook_render(request, request_id):
    """The version's notebook as sanitised static HTML, for the review page's <iframe sandbox> only."""
    review = _request_or_404(request, request_id)
    notebook = _notebook_file(review)
    if notebook is None:
        page = rendering.RenderedPage(rendering.error_page("This version has no notebook to show."), 404)
    else:
        page = rendering.rendered_page(notebook.blob)
    response = HttpResponse(page.html, status=page.status, content_type="text/html; charset=utf-8")
    for header, value in rendering.RESPONSE_HEADERS.items():
        response[header] = value
    if page.status == 503:
        response["Retry-After"] = "60"
    return response


@login_required
@require_safe
def notebook_download(request, request_id):
    """The raw .ipynb of the request's version, as a download (never shown inline)."""
    review = _request_or_404(request, request_id)
    notebook = _notebook_file(review)
    if notebook is None:
        raise Http404("This version has no notebook.")
    response = FileResponse(storage.open_blob(notebook.blob.storage_key), as_attachment=True,
                            filename=notebook.path.rsplit("/", 1)[-1], content_type="application/x-ipynb+json")
    response["Content-Length"] = str(notebook.blob.size)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private"
    return response
