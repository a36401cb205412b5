"""Direct, resumable uploads of a draft's files (repository/services/uploads.py has the rules).

    POST   /api/records/{id}/draft/uploads                    begin: path, size, sha256 -> upload id, part size
    GET    /api/records/{id}/draft/uploads                    the uploads that are not files yet (state, message)
    GET    /api/records/{id}/draft/uploads/{upload}           one upload, with the parts the store holds
    POST   /api/records/{id}/draft/uploads/{upload}/parts     where to PUT parts (presigned URLs), by SHA-256
    POST   /api/records/{id}/draft/uploads/{upload}/complete  all parts sent: check, then add the file
    DELETE /api/records/{id}/draft/uploads/{upload}           abort (or dismiss a failed one)
    PUT    /api/uploads/{upload}/parts/{n}?token=...          a local directory only: the part URL the answers give

A client PUTs each part's bytes to its URL with the headers given; the same code works for S3 (the bytes go
straight to the object store) and for a local directory (they go to the application).
"""

from urllib.parse import urlencode

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from repository import selectors
from repository.api.serializers import with_problem_responses
from repository.api.views import RawBodyParser
from repository.services.uploads import (
    PartTarget,
    upload_abort,
    upload_complete,
    upload_part_receive,
    upload_received_parts,
    upload_sign_parts,
    upload_start,
)


class PartInput(serializers.Serializer):
    number = serializers.IntegerField(min_value=1, max_value=10_000)
    sha256 = serializers.CharField(help_text="The part's SHA-256, base64 (as in x-amz-checksum-sha256) or hex.")


class UploadStartInput(serializers.Serializer):
    path = serializers.CharField(help_text="Relative path of the file in the version, e.g. data/input.csv")
    size = serializers.IntegerField(min_value=1, help_text="The file's size in bytes.")
    sha256 = serializers.CharField(help_text="The file's SHA-256 (64 hex digits); the file is accepted only if the "
                                             "stored bytes hash to it.")
    part_size = serializers.IntegerField(required=False, min_value=1, help_text="Bytes per part (5 MiB to 5 GiB, at "
                                         "most 10,000 parts); default: the server's UPLOAD_PART_SIZE.")
    parts = PartInput(many=True, required=False, help_text="Parts to sign right away, with their SHA-256 (in parts "
                                                           "of part_size): their URLs come in part_urls.")


class SignPartsInput(serializers.Serializer):
    parts = PartInput(many=True, allow_empty=False)


class PartTargetOutput(serializers.Serializer):
    number = serializers.IntegerField()
    method = serializers.CharField(default="PUT")
    url = serializers.CharField()
    headers = serializers.DictField(child=serializers.CharField(), help_text="Send these headers with the bytes.")


class ReceivedPartOutput(serializers.Serializer):
    number = serializers.IntegerField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField(allow_null=True, help_text="base64; null when the store reports none")


class UploadOutput(serializers.Serializer):
    id = serializers.UUIDField(source="upload_id")
    path = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()
    md5 = serializers.CharField()
    state = serializers.ChoiceField(choices=["uploading", "checking", "ready", "failed"])
    message = serializers.CharField(help_text="Why the upload failed, naming the file.")
    part_size = serializers.IntegerField()
    part_count = serializers.IntegerField()
    created = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(help_text="An upload not completed by then is aborted.")
    links = serializers.SerializerMethodField()

    def get_links(self, upload) -> dict:
        request = self.context["request"]
        kwargs = {"record_id": upload.version.record.public_id, "upload_id": upload.upload_id}
        return {name: request.build_absolute_uri(reverse(f"api:{route}", kwargs=kwargs))
                for name, route in (("self", "draft_upload"), ("parts", "draft_upload_parts"),
                                    ("complete", "draft_upload_complete"))}


class UploadDetailOutput(UploadOutput):
    parts_received = ReceivedPartOutput(many=True, help_text="The parts the store holds (while uploading).")
    part_urls = PartTargetOutput(many=True, required=False)


def _targets(request, upload, targets: list[PartTarget]) -> list[dict]:
    answer = []
    for target in targets:
        url = target.url
        if url is None:  # a local directory: the application's part URL, signed by its token
            path = reverse("api:upload_part", kwargs={"upload_id": upload.upload_id, "number": target.number})
            url = request.build_absolute_uri(path) + "?" + urlencode({"token": target.token})
        answer.append({"number": target.number, "method": "PUT", "url": url, "headers": target.headers})
    return answer


def _detail(request, upload, *, targets=None, code=status.HTTP_200_OK) -> Response:
    upload.parts_received = upload_received_parts(upload=upload, actor=request.user)
    upload.part_urls = _targets(request, upload, targets or [])
    return Response(UploadDetailOutput(upload, context={"request": request}).data, status=code)


class DraftUploadsApi(APIView):
    @extend_schema(responses=with_problem_responses({200: UploadOutput(many=True)}, 404),
                   summary="List a draft's uploads that are not files yet (uploading, checking, failed)",
                   operation_id="draft_uploads_list")
    def get(self, request, record_id):
        version = selectors.draft_get_for_user(record_id=record_id, user=request.user)
        uploads = selectors.uploads_list_for_draft(version=version)
        return Response(UploadOutput(uploads, many=True, context={"request": request}).data)

    @extend_schema(request=UploadStartInput,
                   responses=with_problem_responses({201: UploadDetailOutput}, 400, 403, 404, 409, 413, 503),
                   summary="Begin a direct, resumable upload of a file (answers the part size and part URLs)",
                   operation_id="draft_upload_start")
    def post(self, request, record_id):
        version = selectors.draft_get_for_user(record_id=record_id, user=request.user)
        serializer = UploadStartInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        upload = upload_start(version=version, actor=request.user, path=data["path"], size=data["size"],
                              sha256=data["sha256"], part_size=data.get("part_size"))
        targets = upload_sign_parts(upload=upload, actor=request.user, parts=data["parts"]) if data.get("parts") else []
        return _detail(request, upload, targets=targets, code=status.HTTP_201_CREATED)


class DraftUploadApi(APIView):
    @extend_schema(responses=with_problem_responses({200: UploadDetailOutput}, 404, 503),
                   summary="An upload, with the parts the store holds (to resume)", operation_id="draft_upload_get")
    def get(self, request, record_id, upload_id):
        upload = selectors.upload_get_for_user(record_id=record_id, upload_id=upload_id, user=request.user)
        return _detail(request, upload)

    @extend_schema(responses=with_problem_responses({204: None}, 404, 409, 503),
                   summary="Abort an upload (its parts are deleted), or dismiss a failed one",
                   operation_id="draft_upload_abort")
    def delete(self, request, record_id, upload_id):
        upload = selectors.upload_get_for_user(record_id=record_id, upload_id=upload_id, user=request.user)
        upload_abort(upload=upload, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DraftUploadPartsApi(APIView):
    @extend_schema(request=SignPartsInput,
                   responses=with_problem_responses({200: PartTargetOutput(many=True)}, 400, 404, 409, 503),
                   summary="URLs to PUT parts to (S3: presigned, valid S3_PRESIGNED_TTL s), each bound to the "
                           "part's SHA-256", operation_id="draft_upload_sign_parts")
    def post(self, request, record_id, upload_id):
        upload = selectors.upload_get_for_user(record_id=record_id, upload_id=upload_id, user=request.user)
        serializer = SignPartsInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        targets = upload_sign_parts(upload=upload, actor=request.user, parts=serializer.validated_data["parts"])
        return Response(_targets(request, upload, targets))


class DraftUploadCompleteApi(APIView):
    @extend_schema(request=None, responses=with_problem_responses({202: UploadOutput}, 400, 404, 409, 503),
                   summary="Complete an upload: its file is checked against the declared SHA-256, then added",
                   operation_id="draft_upload_complete")
    def post(self, request, record_id, upload_id):
        upload = selectors.upload_get_for_user(record_id=record_id, upload_id=upload_id, user=request.user)
        upload = upload_complete(upload=upload, actor=request.user)
        return Response(UploadOutput(upload, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)


class UploadPartApi(APIView):
    """A local directory's part URL. Its `token` is the signature, as a presigned S3 URL's is: no login."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes = [RawBodyParser]

    @extend_schema(request={"application/octet-stream": OpenApiTypes.BINARY},
                   responses=with_problem_responses({200: ReceivedPartOutput}, 400, 404, 409, 503),
                   summary="Send one part (local storage; S3 answers presigned URLs instead)",
                   operation_id="upload_part_put")
    def put(self, request, upload_id, number):
        raw_length = request.META.get("CONTENT_LENGTH") or ""
        part = upload_part_receive(
            upload_id=upload_id, number=number, token=request.query_params.get("token", ""),
            sha256_b64=request.META.get("HTTP_X_AMZ_CHECKSUM_SHA256", ""),
            content_range=request.META.get("HTTP_CONTENT_RANGE", ""), stream=request.stream,
            content_length=int(raw_length) if raw_length.isdigit() else None)
        response = Response(ReceivedPartOutput(part).data)
        response["ETag"] = f'"{part.etag}"'
        response["x-amz-checksum-sha256"] = part.sha256
        return response
