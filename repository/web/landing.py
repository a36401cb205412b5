"""Public landing pages of published versions, their file downloads, tombstones, and the embedded DOI resolver.

`/records/<id>/` shows the latest published version (what the concept DOI resolves to); every earlier version
stays reachable at `/records/<id>/versions/<n>/`. A withdrawn version's page is a tombstone: HTTP 410 that still
shows the citation, the DOI and the reason, and serves no files. The owners start a new version here, an admin
withdraws one, and owners or admins correct a published version's metadata (`/versions/<n>/edit/`). The
harvesting issue adds what machines read:

- the head of a landing page: `<link rel="canonical">`, Dublin Core (`DC.*`, from
  repository.exports.dublincore, the same elements OAI-PMH serves), Highwire Press `citation_*` tags (what Google
  Scholar and Zotero read) and the schema.org JSON-LD (repository.exports.jsonld);
- FAIR Signposting (repository.exports.signposting): a `Link` header on every landing page, the linkset at
  `/records/<id>/linkset` and `/records/<id>/versions/<n>/linkset` (`application/linkset+json` by default,
  `application/linkset` by Accept or `?format=linkset`), and a `collection` link on file downloads;
- content negotiation (by `Accept` or `?format=`): `application/ld+json` (`jsonld`), DataCite XML
  (`datacite-xml`) and JSON (`datacite-json`) besides the HTML, with `Vary: Accept`.

`/records/<id>/` is the landing page of the concept DOI, so everything machine-readable there describes the
concept: `cite-as` and `citation_doi` are the concept DOI, and its JSON-LD is `concept_jsonld` (the latest
version's description under the concept DOI, every version as `hasPart`). `/records/<id>/versions/<n>/` describes
that version, which `isPartOf` the concept. A tombstone keeps only `cite-as` and `describedby`, and its head has no
meta tags or JSON-LD: it is `noindex`, and scholarly indexers must not take it for the work.
"""

import json
import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch, prefetch_related_objects
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST, require_safe

from repository import exports, selectors
from repository.access.http import holds_share_link, not_indexed, request_can_read_files
from repository.access.policy import files_are_open
from repository.access.serving import (
    closed_files_message,
    files_closed_response,
    private_unless_open,
    run_message,
)
from repository.access.views import landing_access_context
from repository.downloads import blob_download_response
from repository.errors import Conflict, InvalidInput, NbarchiveError, NotFound, PermissionDenied
from repository.exports import (
    accepted_versions,
    creator_name,
    publication_date,
    record_landing_url,
    version_landing_url,
)
from repository.exports.access import files_linkable
from repository.exports.datacite import concept_datacite_metadata, datacite_xml, version_datacite_metadata
from repository.exports.dublincore import version_dublin_core
from repository.exports.jsonld import concept_jsonld, file_download_url, jsonld_script, version_jsonld
from repository.exports.signposting import (
    DATACITE_XML,
    HTML,
    JSONLD,
    LINKSET,
    LINKSET_FORMATS,
    LINKSET_JSON,
    METADATA_FORMATS,
    Signposts,
    collection_link_header,
    concept_signposts,
    head_links,
    link_header,
    linkset_json,
    linkset_text,
    version_signposts,
)
from repository.models import DoiState, LocalDoi, UsageEvent, Version, VersionFile
from repository.permissions import can_correct_metadata, is_owner
from repository.services.dois import doi_url
from repository.services.new_versions import version_new_draft
from repository.services.published import version_correct_metadata, version_withdraw
from repository.services.reverification import verification_history
from repository.services.usage import usage_record
from repository.web.citing import DEFAULT_STYLE, citation_html
from repository.web.deposit import DepositForm, deposit_page_context
from repository.web.reading import reader_context
from repository.web.references import data_references_described

logger = logging.getLogger(__name__)

# The representations of a landing page, the HTML first (what `*/*` and browsers get).
LANDING_MEDIA_TYPES = (HTML, *(media_type for media_type, _ in METADATA_FORMATS))
LANDING_FORMATS = {"html": HTML, **{fmt: media_type for media_type, fmt in METADATA_FORMATS}}
# The linkset's, by what a client may ask for; JSON unless the text format is asked for.
LINKSET_MEDIA_TYPES = {LINKSET_JSON: LINKSET_JSON, LINKSET: LINKSET, "application/json": LINKSET_JSON}
LINKSET_BY_FORMAT = {fmt: media_type for media_type, fmt in LINKSET_FORMATS.items()}


def _public_or_404(record_id: str, number: int | None = None) -> tuple[Version, list[Version]]:
    try:
        return selectors.version_get_public(record_id=record_id, number=number)
    except NotFound as exc:
        raise Http404(exc.detail) from None


@require_safe
def record_landing(request, record_id, number=None):
    """The landing page of the concept (`number` None) or of one version, in the representation asked for."""
    version, versions = _public_or_404(record_id, number)
    media_type = _negotiate(request, LANDING_FORMATS, LANDING_MEDIA_TYPES) or HTML
    if media_type == HTML:
        response = _render_landing(request, version, versions, concept=number is None)
        if response.status_code == 200:
            usage_record(request, version, UsageEvent.Kind.VIEW)
    else:
        response = _metadata_response(version, media_type, concept=number is None)
    patch_vary_headers(response, ["Accept"])
    return response


@require_safe
def record_linkset(request, record_id, number=None):
    """The Signposting linkset of a landing page (RFC 9264), as JSON unless `application/linkset` is asked for."""
    version, _ = _public_or_404(record_id, number)
    _load_details(version)
    signposts = _signposts(version, concept=number is None)
    media_type = LINKSET_MEDIA_TYPES[_negotiate(request, LINKSET_BY_FORMAT, tuple(LINKSET_MEDIA_TYPES))
                                     or LINKSET_JSON]
    if media_type == LINKSET:
        response = HttpResponse(linkset_text(signposts), content_type=LINKSET)
    else:
        response = HttpResponse(json.dumps(linkset_json(signposts), indent=2), content_type=LINKSET_JSON)
    response["Access-Control-Allow-Origin"] = "*"  # public metadata, for clients in browsers
    patch_vary_headers(response, ["Accept"])
    return response


def _negotiate(request, formats: dict[str, str], media_types: tuple[str, ...]) -> str | None:
    """The media type asked for by `?format=` (a key of `formats`), else the best of `media_types` for the
    Accept header (the first on a tie or for `*/*`); None when nothing offered is acceptable."""
    fmt = request.GET.get("format", "")
    if fmt in formats:
        return formats[fmt]
    return request.get_preferred_type(media_types)


def _load_details(version: Version) -> None:
    """Fetch everything the head, the page, the JSON-LD and the links read, once."""
    prefetch_related_objects([version], "creators", "related_identifiers", "data_references",
                             Prefetch("files", queryset=VersionFile.objects.select_related("blob").order_by("path")))
    prefetch_related_objects([version.record], "versions")


def _metadata_response(version: Version, media_type: str, *, concept: bool) -> HttpResponse:
    """The JSON-LD or DataCite metadata of a landing page, with its Signposting; 410 for a tombstone."""
    _load_details(version)
    record = version.record
    if media_type == JSONLD:
        body = json.dumps(concept_jsonld(record) if concept else version_jsonld(version), ensure_ascii=False,
                          indent=2)
    else:
        metadata = concept_datacite_metadata(record) if concept else version_datacite_metadata(version)
        body = datacite_xml(metadata) if media_type == DATACITE_XML else json.dumps(metadata, ensure_ascii=False,
                                                                                     indent=2)
    content_type = JSONLD if media_type == JSONLD else f"{media_type}; charset=utf-8"
    status = 410 if version.state == Version.State.WITHDRAWN else 200
    response = HttpResponse(body, content_type=content_type, status=status)
    response["Link"] = link_header(_signposts(version, concept=concept))
    response["Access-Control-Allow-Origin"] = "*"
    return response


def _signposts(version: Version, *, concept: bool) -> Signposts:
    """The links of the record page (which shows `version`, its latest) or of the version's own page."""
    return concept_signposts(version.record, version) if concept else version_signposts(version)


def _render_landing(request, version: Version, versions: list[Version], *, concept: bool = False,
                    withdraw_reason: str = "", withdraw_errors: list[str] | None = None, status: int = 200):
    _load_details(version)
    record = version.record
    signposts = _signposts(version, concept=concept)
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
        "head": {"canonical": signposts.anchor, "links": head_links(signposts)},
    }
    if version.state == Version.State.WITHDRAWN:
        response = render(request, "repository/tombstone.html", context, status=410)
        response["Link"] = link_header(signposts)
        return response

    files = list(version.files.all())
    files_readable = request_can_read_files(request, version)
    verification = verification_history(version, files_readable=files_readable)
    context["head"].update(meta=_head_meta(version, files, concept=concept),
                           jsonld=jsonld_script(concept_jsonld(record) if concept else version_jsonld(version)))
    # The "Request access" box of a restricted version; `noindex` when reached through a share link, whose
    # pages carry no Signposting (neither in the head nor in the Link header).
    access = landing_access_context(request, version, files_readable=files_readable)
    context.update(access)
    if access["noindex"]:
        context["head"]["links"] = []
    owner = is_owner(request.user, record)
    reader, reader_status = reader_context(request, version, files, verification.latest,
                                           files_readable=files_readable)
    context.update(reader)
    context.update({
        "files": files,
        # Closed files: the page (metadata, DOI, citation) stays; the notebook and the download links give way
        # to the notice.
        "files_readable": files_readable,
        "files_closed_message": "" if files_readable else closed_files_message(version),
        "described_references": data_references_described(version),
        "run": verification.latest,
        "run_message": (run_message(verification.latest, files_readable=files_readable)
                        if verification.latest else ""),
        "verification": verification,
        "is_owner": owner,
        "can_correct": can_correct_metadata(request.user, record),
        "corrections": selectors.record_corrections(record),
        # The version an owner is working on (a draft, in review or being published), if there is one.
        "unpublished": (record.versions.filter(state__in=Version.UNPUBLISHED_STATES).first() if owner else None),
        "can_withdraw": (bool(getattr(request.user, "is_superuser", False))
                         and version.state == Version.State.PUBLISHED),
        "withdraw_reason": withdraw_reason,
        "withdraw_errors": withdraw_errors or [],
    })
    response = render(request, "repository/landing.html", context,
                      status=status if status != 200 else reader_status)
    if access["noindex"]:
        return not_indexed(response)
    response["Link"] = link_header(signposts)
    return private_unless_open(response, version)


def _head_meta(version: Version, files: list[VersionFile], *, concept: bool) -> list[tuple[str, str]]:
    """The `<meta name content>` pairs of a landing page: Dublin Core, then Highwire Press `citation_*`.

    The concept page is identified by the concept DOI and relates to every version; otherwise both describe the
    version shown (on the concept page, the latest one).
    """
    record = version.record
    landing_url = record_landing_url(record) if concept else version_landing_url(version)
    dublin_core = version_dublin_core(version)
    if concept:
        dublin_core["identifier"] = [exports.doi_url(record.concept_doi)] if record.concept_doi else []
        dublin_core["identifier"].append(landing_url)
        dublin_core["relation"] = [exports.doi_url(v.doi) for v in reversed(accepted_versions(record))]
    # Only the publication date: reference managers take a DC.date as the work's date, and an embargo's end
    # (`info:eu-repo/date/embargoEnd/...`, for OAI-PMH harvesters) is not one.
    dublin_core["date"] = dublin_core["date"][:1]
    meta = [(f"DC.{element}", value) for element, values in dublin_core.items() for value in values]

    meta.append(("citation_title", version.title))
    for creator in version.creators.all():
        meta.append(("citation_author", creator_name(creator).display))
        meta.append(("citation_author_institution", creator.affiliation))
        meta.append(("citation_author_orcid", f"https://orcid.org/{creator.orcid}" if creator.orcid else ""))
    meta.append(("citation_publication_date", publication_date(version).strftime("%Y/%m/%d")))
    meta.append(("citation_doi", record.concept_doi if concept else version.doi))
    meta.append(("citation_publisher", settings.DOI_PUBLISHER))
    meta += [("citation_keywords", keyword) for keyword in version.keywords]
    meta.append(("citation_abstract_html_url", landing_url))
    # Google Scholar indexes the full text it finds here; a notebook archive has one only if a PDF was deposited.
    # Not while the files are closed: the link would only lead crawlers to a refusal.
    pdf = next((f for f in files if f.path.lower().endswith(".pdf")), None) if files_linkable(version) else None
    if pdf is not None:
        meta.append(("citation_pdf_url", file_download_url(version, pdf.path)))
    return [(name, content) for name, content in meta if content and content.strip()]


def _citation_html(version: Version):
    """The APA citation as safe HTML, cached per version (repository.web.citing), or "" when it cannot be
    formatted: a landing page, and above all a tombstone, must answer even if the citation does not."""
    return citation_html(version, DEFAULT_STYLE)


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
            if getattr(corrected, "correction_held", False):
                messages.info(request, "This record's community reviews corrections: yours was sent to its "
                                       "moderators and applies once one of them approves it.")
            elif corrected.public_changed_at == changed_at:
                messages.info(request, "Nothing was changed.")
            else:
                messages.success(request, "Corrected; the DOI metadata is being updated.")
            return redirect("repository:version_landing", record_id=record_id, number=number)
    return _render_correct(request, version, deposit)


def _render_correct(request, version: Version, deposit: DepositForm):
    context = {**deposit_page_context(version, deposit), "data_references": list(version.data_references.all())}
    return render(request, "repository/version_correct.html", context)


@require_safe
def published_file(request, record_id, number, file_path):
    version, versions = _public_or_404(record_id, number)
    if version.state == Version.State.WITHDRAWN:
        return _render_landing(request, version, versions)  # the tombstone, with 410: files are no longer served
    if not request_can_read_files(request, version):
        return files_closed_response(request, version)  # before any presigned URL is minted
    version_file = version.files.select_related("blob").filter(path=file_path).first()
    if version_file is None:
        raise Http404("No such file in a published version.")
    # S3: a redirect to a short-lived presigned URL; a local directory: streamed here, with Range support.
    response = blob_download_response(request, version_file.blob, filename=file_path.rsplit("/", 1)[-1])
    if response.status_code in (200, 302) or response.get("Content-Range", "").startswith("bytes 0-"):
        usage_record(request, version, UsageEvent.Kind.DOWNLOAD, target=file_path)  # not each resumed piece
    response["Digest"] = f"sha-256={version_file.blob.sha256}"
    response["Link"] = collection_link_header(version)  # Signposting: the landing page the file belongs to
    if not files_are_open(version) and holds_share_link(request, version.record):
        return not_indexed(response)  # a file reached through a share link: no Signposting, no index, no-store
    return private_unless_open(response, version)


@require_GET
def doi_resolve(request, doi):
    """The embedded registrar's resolver (DOI_PROVIDER=local), like https://doi.org: a registered or findable
    DOI redirects to its URL; a draft, deleted or unknown one is not registered. DOI names are case-insensitive."""
    local = LocalDoi.objects.filter(doi=doi.strip().lower(),
                                    state__in=(DoiState.REGISTERED, DoiState.FINDABLE)).first()
    if local is None or not local.url:
        return render(request, "repository/doi_not_found.html", {"doi": doi}, status=404)
    return HttpResponseRedirect(local.url)
