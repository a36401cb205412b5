"""Public landing pages of published versions, their file downloads, tombstones, and the embedded DOI resolver.

`/records/<id>/` shows the latest published version (what the concept DOI resolves to); every earlier version
stays reachable at `/records/<id>/versions/<n>/`. A withdrawn version's page is a tombstone: HTTP 410 that still
shows the citation, the DOI and the reason, and serves no files. The owners start a new version here, an admin
withdraws one, and owners or admins correct a published version's metadata (`/versions/<n>/edit/`). The
harvesting issue adds the machine-readable heads (Dublin Core, citation meta tags, JSON-LD, Signposting).
"""

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from repository import selectors, storage
from repository.errors import Conflict, InvalidInput, NbarchiveError, NotFound, PermissionDenied
from repository.exports.citation import version_citation
from repository.models import DoiState, LocalDoi, Version
from repository.permissions import can_correct_metadata, is_owner
from repository.services.dois import doi_url
from repository.services.new_versions import version_new_draft
from repository.services.published import version_correct_metadata, version_withdraw
from repository.web.deposit import DepositForm
from repository.web.forms import COMMON_LICENSES

logger = logging.getLogger(__name__)

# What the citation box offers, as `?format=` values of the API's content negotiation.
EXPORT_FORMATS = (("bibtex", "BibTeX"), ("ris", "RIS"), ("csl", "CSL-JSON"), ("datacite-json", "DataCite JSON"),
                  ("datacite-xml", "DataCite XML"))


def _public_or_404(record_id: str, number: int | None = None) -> tuple[Version, list[Version]]:
    try:
        return selectors.version_get_public(record_id=record_id, number=number)
    except NotFound as exc:
        raise Http404(exc.detail) from None


@require_GET
def record_landing(request, record_id, number=None):
    version, versions = _public_or_404(record_id, number)
    return _render_landing(request, version, versions)


def _render_landing(request, version: Version, versions: list[Version], *, withdraw_reason: str = "",
                    withdraw_errors: list[str] | None = None, status: int = 200):
    record = version.record
    # What `/records/<id>/` and the concept DOI show: the newest version not withdrawn (possibly still publishing).
    latest = next((v for v in versions if v.state != Version.State.WITHDRAWN), None)
    context = {
        "version": version,
        "record": record,
        "record_id": record.public_id,
        "versions": versions,
        "latest": latest,
        "is_latest": latest is not None and version.pk == latest.pk,
        "doi_url": doi_url(version.doi) if version.doi else "",
        "concept_doi_url": doi_url(record.concept_doi) if record.concept_doi else "",
        "citation": _citation_html(version),
    }
    if version.state == Version.State.WITHDRAWN:
        return render(request, "repository/tombstone.html", context, status=410)

    owner = is_owner(request.user, record)
    context.update({
        "files": list(version.files.select_related("blob").order_by("path")),
        "run": version.runs.filter(status="finished").order_by("-finished_at").first(),
        "exports": [(label, reverse("api:record_version", kwargs={"record_id": record.public_id,
                                                                  "number": version.number}) + f"?format={fmt}")
                    for fmt, label in EXPORT_FORMATS],
        "is_owner": owner,
        "can_correct": can_correct_metadata(request.user, record),
        # The version an owner is working on (a draft, in review or being published), if there is one.
        "unpublished": (record.versions.filter(state__in=Version.UNPUBLISHED_STATES).first() if owner else None),
        "can_withdraw": (bool(getattr(request.user, "is_superuser", False))
                         and version.state == Version.State.PUBLISHED),
        "withdraw_reason": withdraw_reason,
        "withdraw_errors": withdraw_errors or [],
    })
    return render(request, "repository/landing.html", context, status=status)


def _citation_html(version: Version):
    """The APA citation as safe HTML (every value is escaped by version_citation), or "" when it cannot be
    formatted: a landing page, and above all a tombstone, must answer even if the citation does not."""
    try:
        return mark_safe(version_citation(version, "apa", fmt="html"))  # escaped by version_citation
    except Exception:
        logger.exception("Could not format the citation of %s", version)
        return ""


@login_required
@require_POST
def version_new(request, record_id):
    """The owners' "New version" button: a draft prefilled from the latest published version."""
    version, _ = _public_or_404(record_id)
    try:
        draft = version_new_draft(record=version.record, actor=request.user)
    except NbarchiveError as exc:
        messages.error(request, exc.detail)
        return redirect("repository:record_landing", record_id=record_id)
    messages.success(request, f"Version {draft.number} was created as a draft from version {version.number}, with "
                              f"its own DOI {draft.doi}. Change what is new, then submit it for review.")
    return redirect("repository:draft_detail", record_id=record_id)


@login_required
@require_POST
def version_withdraw_view(request, record_id, number):
    """An admin withdraws a published version; its page becomes a tombstone showing the reason."""
    version, versions = _public_or_404(record_id, number)
    reason = request.POST.get("reason", "")
    try:
        version_withdraw(version=version, actor=request.user, reason=reason)
    except NbarchiveError as exc:
        if exc.field_errors and version.state == Version.State.PUBLISHED:
            # Shown at the form, with what was typed, so a too long reason can be shortened instead of retyped.
            errors = [message for field_messages in exc.field_errors.values() for message in field_messages]
            return _render_landing(request, version, versions, withdraw_reason=reason,
                                   withdraw_errors=[exc.detail, *errors], status=400)
        messages.error(request, exc.detail)
        return redirect("repository:version_landing", record_id=record_id, number=number)
    messages.success(request, f"Version {number} was withdrawn. Its DOI now resolves to this tombstone.")
    return redirect("repository:version_landing", record_id=record_id, number=number)


@login_required
@require_http_methods(["GET", "POST"])
def version_correct(request, record_id, number):
    """Owners and admins correct a published version's metadata (Zenodo's "Edit" of a published record). What
    was verified stays as it was; the change is audited and the DOI's metadata is sent again."""
    version, _ = _public_or_404(record_id, number)
    if not can_correct_metadata(request.user, version.record):
        raise Http404("No published version you can correct.")  # as for drafts: no hint that it exists
    if version.state == Version.State.WITHDRAWN:
        messages.error(request, f"Version {number} was withdrawn; its metadata is kept as it was.")
        return redirect("repository:version_landing", record_id=record_id, number=number)
    version = selectors.draft_with_details(version)
    if request.method == "GET":
        return _render_correct(request, version, DepositForm(version, correction=True))

    deposit = DepositForm(version, request.POST, correction=True)
    if deposit.is_valid():
        changed_at = version.public_changed_at
        try:
            corrected = version_correct_metadata(version=version, actor=request.user, metadata=deposit.metadata(),
                                                 reason=deposit.reason)
        except InvalidInput as exc:
            deposit.add_service_errors(exc.field_errors or {"non_field_errors": [exc.detail]})
        except (Conflict, PermissionDenied) as exc:
            # Withdrawn, or no longer owned, since the form was opened.
            messages.error(request, exc.detail)
            return redirect("repository:version_landing", record_id=record_id, number=number)
        else:
            if corrected.public_changed_at == changed_at:
                messages.info(request, "Nothing was changed.")
            else:
                messages.success(request, "Corrected; the DOI metadata is being updated.")
            return redirect("repository:version_landing", record_id=record_id, number=number)
    return _render_correct(request, version, deposit)


def _render_correct(request, version: Version, deposit: DepositForm):
    context = {
        "version": version,
        "record_id": version.record.public_id,
        "deposit": deposit,
        "form": deposit.form,
        "formsets": deposit.formsets,
        "common_licenses": COMMON_LICENSES,
        "data_references": list(version.data_references.all()),
    }
    return render(request, "repository/version_correct.html", context)


@require_GET
def published_file(request, record_id, number, file_path):
    version, versions = _public_or_404(record_id, number)
    if version.state == Version.State.WITHDRAWN:
        return _render_landing(request, version, versions)  # the tombstone, with 410: files are no longer served
    version_file = version.files.select_related("blob").filter(path=file_path).first()
    if version_file is None:
        raise Http404("No such file in a published version.")
    response = FileResponse(storage.open_blob(version_file.blob.storage_key), as_attachment=True,
                            filename=file_path.rsplit("/", 1)[-1], content_type="application/octet-stream")
    response["Content-Length"] = str(version_file.blob.size)
    response["X-Content-Type-Options"] = "nosniff"
    response["Digest"] = f"sha-256={version_file.blob.sha256}"
    return response


@require_GET
def doi_resolve(request, doi):
    """The embedded registrar's resolver (DOI_PROVIDER=local), like https://doi.org: a registered or findable
    DOI redirects to its URL; a draft, deleted or unknown one is not registered. DOI names are case-insensitive."""
    local = LocalDoi.objects.filter(doi=doi.strip().lower(),
                                    state__in=(DoiState.REGISTERED, DoiState.FINDABLE)).first()
    if local is None or not local.url:
        return render(request, "repository/doi_not_found.html", {"doi": doi}, status=404)
    return HttpResponseRedirect(local.url)
