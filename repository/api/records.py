"""The public side of records in the API: a published version with content negotiation for citation formats,
the list of versions, and the owners' and admins' actions on published records (new version, correction,
withdrawal).

`GET /api/records/{id}` is the latest published version; `/api/records/{id}/versions/{n}` one version. Both
answer by `Accept` (or `?format=`) with our JSON, DataCite JSON or XML, BibTeX, RIS, CSL-JSON or a formatted
citation (`text/x-bibliography`, `?style=apa`), the formats DOI content negotiation offers, or schema.org JSON-LD
(`application/ld+json`, `?format=jsonld`; the version's, as its landing page embeds it). A withdrawn version
answers 410 with its representation and the reason.
"""

from urllib.parse import urlencode

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from repository import selectors
from repository.access.http import QUERY_PARAMETER as SHARE_PARAMETER
from repository.access.http import request_can_read_files
from repository.access.serving import private_unless_open
from repository.api.renderers import CITATION_RENDERERS, render_export
from repository.api.serializers import (
    AccessField,
    DraftMetadataInput,
    DraftOutput,
    ProblemOutput,
    StrictInput,
    metadata_without_access,
    with_problem_responses,
)
from repository.errors import NotFound
from repository.models import Record, Version
from repository.services.dois import doi_url
from repository.services.new_versions import version_new_draft
from repository.services.published import version_correct_metadata, version_withdraw
from repository.services.usage import usage_counts


class PublicVersionOutput(serializers.Serializer):
    id = serializers.CharField(source="record.public_id")
    version = serializers.IntegerField(source="number")
    state = serializers.CharField()
    doi = serializers.CharField()
    doi_url = serializers.SerializerMethodField()
    concept_doi = serializers.CharField(source="record.concept_doi")
    published_at = serializers.DateTimeField()
    withdrawn_at = serializers.DateTimeField(allow_null=True)
    withdrawal_reason = serializers.CharField()
    access = AccessField()
    metadata = serializers.SerializerMethodField()
    files = serializers.SerializerMethodField()
    stats = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()

    def get_stats(self, version) -> dict:
        """Views and downloads (COUNTER-style: totals after the double-click filter, and unique per visitor and
        hour), of this version and of the record across its versions."""
        return usage_counts(version)

    def get_doi_url(self, version) -> str:
        return doi_url(version.doi) if version.doi else ""

    def get_metadata(self, version) -> dict:
        return metadata_without_access(version)

    def get_files(self, version) -> list[dict]:
        if version.state == Version.State.WITHDRAWN:
            return []  # a tombstone serves no files
        request = self.context["request"]
        # Closed files are listed (names, sizes and checksums are metadata) without a link the reader could use.
        readable = request_can_read_files(request, version)
        # A share-link holder's links carry the token they came with, or they would not open.
        token = request.GET.get(SHARE_PARAMETER, "")
        query = f"?{urlencode({SHARE_PARAMETER: token})}" if token else ""
        return [{"path": f.path, "size": f.blob.size, "checksum": f"sha256:{f.blob.sha256}",
                 "links": {"download": request.build_absolute_uri(reverse(
                     "repository:published_file", kwargs={"record_id": version.record.public_id,
                                                          "number": version.number, "file_path": f.path})) + query}
                 if readable else {}}
                for f in version.files.select_related("blob").order_by("path")]

    def get_links(self, version) -> dict:
        request, record_id = self.context["request"], version.record.public_id
        links = {
            "self": request.build_absolute_uri(reverse("api:record_version", kwargs={"record_id": record_id,
                                                                                     "number": version.number})),
            "latest": request.build_absolute_uri(reverse("api:record", kwargs={"record_id": record_id})),
            "versions": request.build_absolute_uri(reverse("api:record_versions", kwargs={"record_id": record_id})),
            "html": request.build_absolute_uri(reverse("repository:version_landing",
                                                       kwargs={"record_id": record_id, "number": version.number})),
            "badge": request.build_absolute_uri(reverse("repository:version_badge",
                                                        kwargs={"record_id": record_id, "number": version.number})),
        }
        if version.state != Version.State.WITHDRAWN and request_can_read_files(request, version):
            links["archive"] = request.build_absolute_uri(reverse(  # "Download all": one RO-Crate zip
                "repository:version_crate", kwargs={"record_id": record_id, "number": version.number}))
        return links


class VersionSummaryOutput(serializers.Serializer):
    version = serializers.IntegerField(source="number")
    state = serializers.CharField()
    doi = serializers.CharField()
    version_label = serializers.CharField()
    published_at = serializers.DateTimeField()


class CorrectionInput(DraftMetadataInput):
    """A published version's metadata, flat or as GET answers it (with `reason` beside `metadata`). What was
    verified (container_image, notebook_path, comparison_tolerance, data_references, resource_type) may be sent
    unchanged but not changed."""

    envelope_read_only = frozenset({"id", "version", "state", "doi", "doi_url", "concept_doi", "published_at",
                                    "withdrawn_at", "withdrawal_reason", "files", "stats", "links"})
    envelope_kept = frozenset({"reason", "access"})

    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000,
                                   help_text="Why the metadata is corrected; kept in the audit trail.")


class WithdrawInput(StrictInput):
    reason = serializers.CharField(max_length=2000, help_text="Shown to readers on the tombstone page.")


FORMAT_PARAMETERS = [
    OpenApiParameter("format", OpenApiTypes.STR, enum=[r.format for r in CITATION_RENDERERS],
                     description="Instead of an Accept header."),
    OpenApiParameter("style", OpenApiTypes.STR, description="CSL style of text/x-bibliography (default apa)."),
]


# Our JSON is described field by field; the exports are the standards' own documents (DataCite, CSL-JSON,
# schema.org JSON-LD as objects, the others as text), in the media type that was negotiated. A withdrawn version
# answers 410 with the same representations.
EXPORT_BODIES = {renderer.media_type: OpenApiTypes.OBJECT if renderer.media_type.endswith("json") else OpenApiTypes.STR
                 for renderer in CITATION_RENDERERS if renderer.media_type != "application/json"}
PUBLIC_RESPONSES = {
    **{(status_code, "application/json"): PublicVersionOutput for status_code in (200, 410)},
    **{(status_code, media_type): body for status_code in (200, 410) for media_type, body in EXPORT_BODIES.items()},
    **{(status_code, "application/problem+json"): ProblemOutput for status_code in (400, 404, 406)},
}


def _version_response(request, version: Version) -> Response:
    status_code = status.HTTP_410_GONE if version.state == Version.State.WITHDRAWN else status.HTTP_200_OK
    exported = render_export(request, version)
    if exported is not None:
        return Response(exported, status=status_code)
    # The download links (and a share-link holder's token in them) depend on who asks while the files are closed.
    return private_unless_open(Response(PublicVersionOutput(version, context={"request": request}).data,
                                        status=status_code), version)


class RecordApi(APIView):
    permission_classes = [AllowAny]
    renderer_classes = CITATION_RENDERERS

    @extend_schema(parameters=FORMAT_PARAMETERS, responses=PUBLIC_RESPONSES,
                   summary="The latest published version of a record",
                   operation_id="record_get")
    def get(self, request, record_id):
        version, _ = selectors.version_get_public(record_id=record_id)
        return _version_response(request, version)


class RecordVersionApi(APIView):
    permission_classes = [AllowAny]
    renderer_classes = CITATION_RENDERERS

    @extend_schema(parameters=FORMAT_PARAMETERS, responses=PUBLIC_RESPONSES,
                   summary="One published version of a record",
                   operation_id="record_version_get")
    def get(self, request, record_id, number):
        version, _ = selectors.version_get_public(record_id=record_id, number=number)
        return _version_response(request, version)


class RecordVersionsApi(APIView):
    def get_permissions(self):
        return [AllowAny()] if self.request.method == "GET" else super().get_permissions()

    @extend_schema(responses={200: VersionSummaryOutput(many=True), (404, "application/problem+json"): ProblemOutput},
                   summary="Every published (or withdrawn) version of a record", operation_id="record_versions_list")
    def get(self, request, record_id):
        versions = selectors.versions_public(record_id=record_id)
        if not versions:
            raise NotFound(f"No published version of record '{record_id}'.")
        return Response(VersionSummaryOutput(versions, many=True).data)

    @extend_schema(request=None, responses=with_problem_responses({201: DraftOutput}, 403, 404, 409),
                   summary="Start a new version (a draft prefilled from the latest version)",
                   operation_id="record_versions_create")
    def post(self, request, record_id):
        record = Record.objects.filter(public_id=record_id).first()
        # Publishing versions count: their landing page is public, and the service answers 409 while the DOI is
        # being registered.
        if record is None or not record.versions.filter(state__in=Version.ACCEPTED_STATES).exists():
            raise NotFound(f"No published version of record '{record_id}'.")
        draft = version_new_draft(record=record, actor=request.user)
        draft = selectors.draft_with_details(draft)
        return Response(DraftOutput(draft, context={"request": request}).data, status=status.HTTP_201_CREATED)


class RecordVersionMetadataApi(APIView):
    @extend_schema(request=CorrectionInput,
                   responses=with_problem_responses({200: PublicVersionOutput, 202: PublicVersionOutput}, 400, 403,
                                                    404, 409),
                   summary="Correct a published version's metadata (audited; files never change)",
                   description="200: corrected at once. 202: the community that accepted the version reviews "
                   "corrections; the correction waits for a moderator and the version is returned unchanged.",
                   operation_id="record_version_correct")
    def put(self, request, record_id, number):
        version, _ = selectors.version_get_public(record_id=record_id, number=number)
        serializer = CorrectionInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        metadata = dict(serializer.validated_data)
        reason = metadata.pop("reason", "")
        version = version_correct_metadata(version=version, actor=request.user, metadata=metadata, reason=reason)
        # 202: held for the moderators of a community that reviews corrections; the version is still as it was.
        held = getattr(version, "correction_held", False)
        return Response(PublicVersionOutput(version, context={"request": request}).data,
                        status=status.HTTP_202_ACCEPTED if held else status.HTTP_200_OK)


class RecordVersionWithdrawApi(APIView):
    @extend_schema(request=WithdrawInput, responses=with_problem_responses({200: PublicVersionOutput}, 400, 403,
                   404, 409), summary="Withdraw a published version (admins)", operation_id="record_version_withdraw")
    def post(self, request, record_id, number):
        version, _ = selectors.version_get_public(record_id=record_id, number=number)
        serializer = WithdrawInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = version_withdraw(version=version, actor=request.user, reason=serializer.validated_data["reason"])
        return Response(PublicVersionOutput(version, context={"request": request}).data)
