"""REST API views: input serializer -> service -> output serializer. No rules live here."""

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotAuthenticated
from rest_framework.parsers import BaseParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from repository import hooks, selectors, storage
from repository.access.http import request_can_read_files
from repository.access.serving import (
    closed_files_message,
    private_unless_open,
    report_without_content,
    run_message,
)
from repository.api.search import search_response, search_schema
from repository.api.serializers import (
    DraftMetadataInput,
    DraftOutput,
    FileOutput,
    RunDetailOutput,
    RunOutput,
    SubmitInput,
    UserRecordOutput,
    with_problem_responses,
)
from repository.downloads import blob_download_response
from repository.errors import NbarchiveError, NotFound, PermissionDenied
from repository.permissions import can_request_run
from repository.services.drafts import draft_update, record_create
from repository.services.files import draft_file_delete, draft_file_upload
from repository.services.new_versions import draft_discard
from repository.services.runs import run_cancel, run_request


class LengthRequired(NbarchiveError):
    status = 411
    code = "length_required"
    title = "Content-Length is required"


class RawBodyParser(BaseParser):
    """Declares that file uploads take any body; the view reads the stream itself and never parses it."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):  # pragma: no cover - never called
        return stream


_with_errors = with_problem_responses


def _draft_response(request, version, status_code=status.HTTP_200_OK) -> Response:
    version = selectors.draft_with_details(version)
    return Response(DraftOutput(version, context={"request": request}).data, status=status_code)


class RecordCreateApi(APIView):
    """GET searches the published records (anyone); POST creates a record with a draft (a signed-in user)."""

    def get_permissions(self):
        if self.request.method in ("GET", "HEAD", "OPTIONS"):
            return [AllowAny()]
        return super().get_permissions()

    @search_schema
    def get(self, request):
        return search_response(request)

    @extend_schema(request=DraftMetadataInput, responses=_with_errors({201: DraftOutput}, 400, 413),
                   summary="Create a record with a new draft", operation_id="records_create")
    def post(self, request):
        serializer = DraftMetadataInput(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        version = record_create(owner=request.user, metadata=serializer.validated_data)
        return _draft_response(request, version, status.HTTP_201_CREATED)


class DraftApi(APIView):
    @extend_schema(responses=_with_errors({200: DraftOutput}, 404), summary="Show a record's draft",
                   operation_id="draft_get")
    def get(self, request, record_id):
        return _draft_response(request, selectors.draft_get_for_user(record_id=record_id, user=request.user))

    @extend_schema(request=DraftMetadataInput, responses=_with_errors({200: DraftOutput}, 400, 404, 409, 413),
                   summary="Replace a draft's metadata", operation_id="draft_update")
    def put(self, request, record_id):
        version = selectors.draft_get_for_user(record_id=record_id, user=request.user)
        serializer = DraftMetadataInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = draft_update(version=version, actor=request.user, metadata=serializer.validated_data)
        return _draft_response(request, version)

    @extend_schema(responses=_with_errors({204: None}, 403, 404, 409),
                   summary="Discard a draft (and its reserved DOI)", operation_id="draft_discard")
    def delete(self, request, record_id):
        version = selectors.draft_get_for_user(record_id=record_id, user=request.user)
        draft_discard(version=version, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DraftFilesApi(APIView):
    @extend_schema(responses=_with_errors({200: FileOutput(many=True)}, 404), summary="List a draft's files",
                   operation_id="draft_files_list")
    def get(self, request, record_id):
        version = selectors.draft_get_for_user(record_id=record_id, user=request.user)
        files = version.files.select_related("blob", "version__record")
        return Response(FileOutput(files, many=True, context={"request": request}).data)


FILE_PATH_PARAMETER = OpenApiParameter("file_path", OpenApiTypes.STR, OpenApiParameter.PATH,
                                       description="Relative path of the file in the version, e.g. data/input.csv")


class DraftFileApi(APIView):
    parser_classes = [RawBodyParser]

    @extend_schema(parameters=[FILE_PATH_PARAMETER], responses=_with_errors({
        (200, "application/octet-stream"): OpenApiTypes.BINARY,
        (206, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY, description="The requested byte range "
                                                           "(local storage; one range per request)."),
        302: OpenApiResponse(description="S3 storage: a redirect to a presigned URL valid for S3_PRESIGNED_TTL s."),
        416: OpenApiResponse(description="The requested range lies beyond the end of the file."),
    }, 404), summary="Download a draft's file", operation_id="draft_file_download")
    def get(self, request, record_id, file_path):
        version = selectors.draft_get_for_user(record_id=record_id, user=request.user)
        version_file = version.files.select_related("blob").filter(path=file_path).first()
        if version_file is None:
            raise NotFound(f"The draft has no file '{file_path}'.")
        # S3: a redirect to a short-lived presigned URL; a local directory: streamed here, with Range support.
        response = blob_download_response(request, version_file.blob, filename=file_path.rsplit("/", 1)[-1])
        response["Digest"] = f"sha-256={version_file.blob.sha256}"
        return response

    @extend_schema(parameters=[FILE_PATH_PARAMETER], request={"application/octet-stream": OpenApiTypes.BINARY},
                   responses=_with_errors({201: FileOutput}, 400, 404, 409, 411, 413, 503),
                   summary="Upload a file to a draft (the body is the file)", operation_id="draft_file_upload")
    def put(self, request, record_id, file_path):
        version = selectors.draft_get_for_user(record_id=record_id, user=request.user)
        content_length = _content_length(request)
        # request.stream is the raw body; request.data is never touched, so nothing is parsed or buffered.
        version_file = draft_file_upload(version=version, actor=request.user, path=file_path,
                                         stream=request.stream, content_length=content_length)
        version_file = version.files.select_related("blob", "version__record").get(pk=version_file.pk)
        return Response(FileOutput(version_file, context={"request": request}).data, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[FILE_PATH_PARAMETER], responses=_with_errors({204: None}, 404, 409),
                   summary="Remove a file from a draft", operation_id="draft_file_delete")
    def delete(self, request, record_id, file_path):
        version = selectors.draft_get_for_user(record_id=record_id, user=request.user)
        draft_file_delete(version=version, actor=request.user, path=file_path)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _content_length(request) -> int:
    raw = request.META.get("CONTENT_LENGTH") or ""
    if not raw.strip():
        raise LengthRequired("Send the file with a Content-Length header (chunked uploads are not accepted).")
    try:
        length = int(raw)
    except ValueError:
        raise LengthRequired("The Content-Length header is not a number.") from None
    if length < 0:
        raise LengthRequired("The Content-Length header is negative.")
    return length


class UserRecordsApi(APIView):
    @extend_schema(responses=_with_errors({200: UserRecordOutput(many=True)}),
                   summary="List the records you own (newest version of each)", operation_id="user_records_list")
    def get(self, request):
        versions = selectors.records_list_for_user(user=request.user)
        return Response(UserRecordOutput(versions, many=True).data)


class DraftSubmitApi(APIView):
    @extend_schema(request=SubmitInput, responses=_with_errors({202: DraftOutput}, 400, 404, 409, 429),
                   summary="Submit a draft for review to a community (queues a verification run)",
                   operation_id="draft_submit")
    def post(self, request, record_id):
        version = selectors.draft_get_for_user(record_id=record_id, user=request.user)
        serializer = SubmitInput(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        slug = serializer.validated_data.get("community")
        hooks.submit_for_review(version=version, actor=request.user, community=slug)
        return _draft_response(request, version, status.HTTP_202_ACCEPTED)


class DraftRunsApi(APIView):
    @extend_schema(responses=_with_errors({200: RunOutput(many=True)}, 404), operation_id="draft_runs_list",
                   summary="List the verification runs of a draft, newest first")
    def get(self, request, record_id):
        version = selectors.draft_get_for_user(record_id=record_id, user=request.user)
        runs = selectors.runs_list_for_version(version=version)
        return Response(RunOutput(runs, many=True, context={"request": request}).data)

    @extend_schema(request=None, responses=_with_errors({202: RunOutput}, 403, 404, 409),
                   operation_id="draft_run_request",
                   summary="Re-run the verification of a draft (owners and moderators)")
    def post(self, request, record_id):
        version = selectors.draft_get_for_user(record_id=record_id, user=request.user)
        if not can_request_run(request.user, version):
            raise PermissionDenied("Only the owners and moderators can re-run the verification.")
        run = run_request(version=version, requested_by=request.user)
        return Response(RunOutput(run, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)


def _readable_run(request, run_id):
    """A run the caller may read: public ones for anyone; others ask anonymous callers to authenticate (401)
    rather than saying they do not exist, as every private endpoint does."""
    try:
        return selectors.run_get_for_user(run_id=run_id, user=request.user)
    except NotFound:
        if not request.user.is_authenticated:
            raise NotAuthenticated() from None
        raise


class RunApi(APIView):
    # Anyone may ask: the selector answers 404 unless the run is public (an accepted version's) or theirs to see.
    permission_classes = [AllowAny]

    @extend_schema(responses=_with_errors({200: RunDetailOutput}, 404), operation_id="run_get",
                   summary="A verification run with its reproducibility report")
    def get(self, request, run_id):
        run = _readable_run(request, run_id)
        data = RunDetailOutput(run, context={"request": request}).data
        if not request_can_read_files(request, run.version):
            # A public report of closed files: the verdict and each cell's comparison status, nothing they hold.
            data["report"] = report_without_content(data["report"])
            data["message"] = run_message(run, files_readable=False)
            data["logs"] = ""
            data["links"].pop("executed_notebook", None)
        return private_unless_open(Response(data), run.version)


class RunExecutedNotebookApi(APIView):
    permission_classes = [AllowAny]  # as RunApi: the selector decides

    @extend_schema(responses=_with_errors({(200, "application/x-ipynb+json"): OpenApiTypes.BINARY}, 403, 404),
                   operation_id="run_executed_notebook", summary="Download the notebook as the run executed it")
    def get(self, request, run_id):
        run = _readable_run(request, run_id)
        if not request_can_read_files(request, run.version):
            raise PermissionDenied(closed_files_message(run.version))
        if run.executed_notebook is None:
            raise NotFound("This run produced no executed notebook.")
        response = FileResponse(storage.open_blob(run.executed_notebook.storage_key), as_attachment=True,
                                filename=f"executed-{run.run_id}.ipynb", content_type="application/x-ipynb+json")
        response["X-Content-Type-Options"] = "nosniff"
        return private_unless_open(response, run.version)


class RunCancelApi(APIView):
    @extend_schema(request=None, responses=_with_errors({202: RunOutput}, 403, 404, 409), operation_id="run_cancel",
                   summary="Cancel a queued or running verification run (and its GitLab pipeline)")
    def post(self, request, run_id):
        run = selectors.run_get_for_user(run_id=run_id, user=request.user)
        run = run_cancel(run=run, actor=request.user)
        return Response(RunOutput(run, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)
