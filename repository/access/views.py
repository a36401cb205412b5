"""The web side of access: the reader's "Request access" form on a landing page, the owners' access page
(requests, grants, share links), share-link redemption and the read-only page of a shared draft.

Thin views over services.py, as the API is. The owners' pages answer 404 to everyone else (no hint the record has
requests). Pages reached through a share link are never indexed and carry no Signposting (`http.not_indexed`).
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST, require_safe

from repository import selectors as core_selectors
from repository.access import selectors
from repository.access.forms import AccessAcceptForm, AccessDeclineForm, AccessRequestForm, ShareLinkForm
from repository.access.http import (
    holds_share_link,
    live_share_link,
    not_indexed,
    remember_share_link,
    request_can_read_files,
    share_link_url,
)
from repository.access.notifications import record_title
from repository.access.permissions import restricted_versions, shareable_draft
from repository.access.policy import effective_access, live_grants
from repository.access.services import (
    access_grant_revoke,
    access_request_accept,
    access_request_create,
    access_request_decline,
    share_link_create,
    share_link_redeem,
    share_link_revoke,
)
from repository.downloads import blob_download_response
from repository.errors import InvalidInput, NbarchiveError, NotFound
from repository.models import FileAccess, Version
from repository.permissions import is_owner


def _managed_or_404(request, record_id: str):
    try:
        return selectors.record_get_managed(record_id=record_id, user=request.user)
    except NotFound as exc:
        raise Http404(exc.detail) from None


# The reader's side, on a landing page

def landing_access_context(request, version: Version, *, files_readable: bool) -> dict:
    """What the landing page's access box (templates/access/_request_access.html) shows about a restricted
    version: nothing for open ones; a sign-in link, the request form, a pending request, or why the reader has
    access (`files_readable`: the landing page's own answer of the policy). `noindex`: the page was reached
    through a share link (landing.py then leaves out Signposting)."""
    record = version.record
    shared = holds_share_link(request, record)
    context = {"noindex": shared}
    if version.state == Version.State.WITHDRAWN or effective_access(version) != FileAccess.RESTRICTED:
        return context
    user = request.user
    box = {"version": version, "record_id": record.public_id, "shared": shared,
           "owner": is_owner(user, record), "signed_in": user.is_authenticated,
           "login_url": f"{reverse('account_login')}?{urlencode({'next': request.get_full_path()})}"}
    if box["signed_in"] and not box["owner"]:
        box["grant"] = live_grants(user, record).order_by("-created").first()
        box["pending"] = selectors.access_request_pending_for(record=record, user=user)
        box["form"] = AccessRequestForm()
    if shared and (draft := shareable_draft(record)) is not None:
        box["shared_draft_url"] = reverse("access:shared_draft", kwargs={"record_id": record.public_id})
        box["shared_draft"] = draft
    box["can_read"] = files_readable
    return {**context, "access_box": box}


@login_required
@require_POST
def request_access(request, record_id):
    """A signed-in reader asks for access; back to the page the form was on, with what happened."""
    try:
        record = selectors.record_get_public(record_id=record_id)
    except NotFound as exc:
        raise Http404(exc.detail) from None
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        back = reverse("repository:record_landing", kwargs={"record_id": record.public_id})
    form = AccessRequestForm(request.POST)
    if not form.is_valid():
        for field_messages in form.errors.values():
            for message in field_messages:
                messages.error(request, f"Your request was not sent: {message}")
        return redirect(back)
    try:
        access_request = access_request_create(record=record, requester=request.user,
                                               message=form.cleaned_data["message"])
    except NbarchiveError as exc:
        messages.error(request, f"Your request was not sent: {exc.detail}")
    else:
        messages.success(request, f"Your request {access_request.number} was sent to the owners; you will get an "
                                  "e-mail with their answer.")
    return redirect(back)


# The owners' page

@login_required
def manage(request, record_id):
    record = _managed_or_404(request, record_id)
    return _render_manage(request, record)


def _render_manage(request, record, *, link_form: ShareLinkForm | None = None, created_url: str = "",
                   status: int = 200):
    requests = list(selectors.access_requests_list(record=record))
    context = {
        "record": record,
        "record_id": record.public_id,
        "title": record_title(record),
        "pending": [r for r in requests if r.state == r.State.PENDING],
        "answered": [r for r in requests if r.state != r.State.PENDING][:50],
        "grants": list(selectors.access_grants_live(record=record)),
        "links": list(selectors.share_links_list(record=record)),
        "restricted_versions": restricted_versions(record),
        "shareable_draft": shareable_draft(record),
        "accept_form": AccessAcceptForm(),
        "decline_form": AccessDeclineForm(),
        "link_form": link_form or ShareLinkForm(),
        "created_url": created_url,
    }
    response = render(request, "access/manage.html", context, status=status)
    response["Cache-Control"] = "private, no-store"  # a new share link's secret may be on it
    return response


def _messages_from(request, exc: NbarchiveError) -> None:
    details = [message for field_messages in exc.field_errors.values() for message in field_messages]
    messages.error(request, " ".join([exc.detail, *[d for d in details if d != exc.detail]]))


@login_required
@require_POST
def request_accept(request, record_id, number):
    record = _managed_or_404(request, record_id)
    access_request = _request_or_404(record, number)
    form = AccessAcceptForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Request {number} was not accepted: {form.errors['until'][0]}")
        return redirect("access:manage", record_id=record_id)
    try:
        grant = access_request_accept(request=access_request, actor=request.user, until=form.cleaned_data["until"])
    except NbarchiveError as exc:
        _messages_from(request, exc)
    else:
        until = f" until {grant.until:%Y-%m-%d}" if grant.until else ""
        messages.success(request, f"Request {number} accepted: {access_request.requester.username} may read the "
                                  f"restricted files{until}, and was told by e-mail.")
    return redirect("access:manage", record_id=record_id)


@login_required
@require_POST
def request_decline(request, record_id, number):
    record = _managed_or_404(request, record_id)
    access_request = _request_or_404(record, number)
    form = AccessDeclineForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Request {number} was not declined: {form.errors['reason'][0]}")
        return redirect("access:manage", record_id=record_id)
    try:
        access_request_decline(request=access_request, actor=request.user, reason=form.cleaned_data["reason"])
    except NbarchiveError as exc:
        _messages_from(request, exc)
    else:
        messages.success(request, f"Request {number} declined; {access_request.requester.username} was told by "
                                  "e-mail.")
    return redirect("access:manage", record_id=record_id)


def _request_or_404(record, number: int):
    try:
        return selectors.access_request_get(record=record, number=number)
    except NotFound as exc:
        raise Http404(exc.detail) from None


@login_required
@require_POST
def grant_revoke(request, record_id, grant_id):
    record = _managed_or_404(request, record_id)
    try:
        grant = selectors.access_grant_get(record=record, grant_id=grant_id)
        access_grant_revoke(grant=grant, actor=request.user)
    except NotFound as exc:
        raise Http404(exc.detail) from None
    except NbarchiveError as exc:
        _messages_from(request, exc)
    else:
        messages.success(request, f"{grant.user.username} no longer reads the restricted files.")
    return redirect("access:manage", record_id=record_id)


@login_required
@require_POST
def link_create(request, record_id):
    """Make a share link; the page is rendered, not redirected to: the secret exists only in this response."""
    record = _managed_or_404(request, record_id)
    form = ShareLinkForm(request.POST)
    if form.is_valid():
        try:
            _link, token = share_link_create(record=record, actor=request.user, expires=form.cleaned_data["expires"],
                                             label=form.cleaned_data["label"])
        except InvalidInput as exc:
            for field, field_messages in exc.field_errors.items():
                form.add_error(field if field in form.fields else None, field_messages)
        except NbarchiveError as exc:
            form.add_error(None, exc.detail)
        else:
            return _render_manage(request, record, created_url=share_link_url(token), status=201)
    return _render_manage(request, record, link_form=form, status=400)


@login_required
@require_POST
def link_revoke(request, record_id, link_id):
    record = _managed_or_404(request, record_id)
    try:
        link = selectors.share_link_get(record=record, link_id=link_id)
        share_link_revoke(link=link, actor=request.user)
    except NotFound as exc:
        raise Http404(exc.detail) from None
    except NbarchiveError as exc:
        _messages_from(request, exc)
    else:
        messages.success(request, f"The share link{f' “{link.label}”' if link.label else ''} was revoked; it no "
                                  "longer opens anything, also for those who opened it before.")
    return redirect("access:manage", record_id=record_id)


# Share links

@require_safe
def share_redeem(request, token):
    """Open a share link: kept in the session (the holder then browses), one use counted, and on to what it opens:
    the newest restricted version's landing page, else the shared draft, else the record's public page."""
    try:
        if request.method == "HEAD":  # link checkers and previews: answered alike, not counted as a use
            link = live_share_link(token)
            if link is None:
                raise NotFound("This share link does not work: it is unknown, was revoked, or has expired.")
        else:
            link = share_link_redeem(token=token)
    except NotFound as exc:
        response = render(request, "access/share_invalid.html", {"detail": exc.detail}, status=404)
        return not_indexed(response)
    remember_share_link(request, link)
    record = link.record
    restricted = restricted_versions(record)
    if restricted:
        target = reverse("repository:version_landing", kwargs={"record_id": record.public_id,
                                                               "number": restricted[0].number})
    elif shareable_draft(record) is not None:
        target = reverse("access:shared_draft", kwargs={"record_id": record.public_id})
    else:
        target = reverse("repository:record_landing", kwargs={"record_id": record.public_id})
    return not_indexed(redirect(target))


def _shared_draft_or_404(request, record_id: str) -> Version:
    draft = (Version.objects.select_related("record")
             .filter(record__public_id=record_id, state__in=(Version.State.DRAFT, Version.State.IN_REVIEW)).first())
    if draft is None or not request_can_read_files(request, draft):
        raise Http404("No shared draft here: the link may have been revoked or may have expired.")
    return draft


@require_safe
def shared_draft(request, record_id):
    """A read-only view of a draft for the holders of a share link (a paper's referees): its metadata and its
    files. The owners edit it on their own draft page."""
    draft = core_selectors.draft_with_details(_shared_draft_or_404(request, record_id))
    context = {"version": draft, "record_id": record_id, "files": list(draft.files.all()),
               "is_owner": is_owner(request.user, draft.record)}
    return not_indexed(render(request, "access/shared_draft.html", context))


@require_safe
def shared_draft_file(request, record_id, file_path):
    draft = _shared_draft_or_404(request, record_id)
    version_file = draft.files.select_related("blob").filter(path=file_path).first()
    if version_file is None:
        raise Http404("The shared draft has no such file.")
    response = blob_download_response(request, version_file.blob, filename=file_path.rsplit("/", 1)[-1])
    response["Digest"] = f"sha-256={version_file.blob.sha256}"
    return not_indexed(response)

