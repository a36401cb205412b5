"""GitLab in the API: linking a record to a project, importing a ref as a new version draft, the tag push webhook.

- `GET|PUT|DELETE /api/records/{id}/gitlab`: the record's link (owners). PUT {"project": "group/name"} answers
  the webhook URL and secret to configure in GitLab (Settings > Webhooks, "Tag push events"); the secret is shown
  in that answer only.
- `POST /api/records/{id}/versions/import` {"ref": "v1.2", "project": optional, must be the linked one}: 202 with
  the import; the draft appears when the import is done (`GET /api/records/{id}/gitlab` lists imports).
- `POST /api/hooks/gitlab`: GitLab's webhook; no session or token of ours, the X-Gitlab-Token header is the
  authentication (403 when it does not match).
"""

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from repository.api.serializers import ProblemOutput, StrictInput, with_problem_responses
from repository.errors import NotFound
from repository.gitlab.models import GitLabImport, GitLabLink
from repository.gitlab.services.imports import (
    gitlab_import_request,
    gitlab_link_remove,
    gitlab_link_set,
    gitlab_webhook_receive,
)
from repository.models import Record
from repository.permissions import is_owner

IMPORTS_LISTED = 20


class GitLabLinkInput(StrictInput):
    project = serializers.CharField(max_length=255, help_text="namespace/project, or the project's numeric id")


class GitLabImportInput(StrictInput):
    ref = serializers.CharField(max_length=255, help_text="The tag (or branch, or commit) to import")
    project = serializers.CharField(max_length=255, required=False, help_text="The linked project (optional)")


class GitLabImportOutput(serializers.Serializer):
    id = serializers.IntegerField()
    ref = serializers.CharField()
    sha = serializers.CharField()
    status = serializers.CharField()
    source = serializers.CharField()
    message = serializers.CharField()
    version = serializers.IntegerField(source="version.number", allow_null=True, default=None)
    created = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class GitLabLinkOutput(serializers.Serializer):
    project = serializers.CharField(source="project_path")
    project_id = serializers.IntegerField()
    web_url = serializers.CharField()
    webhook_url = serializers.SerializerMethodField()
    imports = serializers.SerializerMethodField()

    def get_webhook_url(self, link) -> str:
        return self.context["request"].build_absolute_uri(reverse("api:gitlab_webhook"))

    def get_imports(self, link) -> list[dict]:
        rows = GitLabImport.objects.filter(record_id=link.record_id).select_related("version")[:IMPORTS_LISTED]
        return GitLabImportOutput(rows, many=True).data


class GitLabLinkCreatedOutput(GitLabLinkOutput):
    webhook_secret = serializers.CharField(help_text="Shown this once: enter it as the webhook's secret token")


def _owned_record(record_id: str, user) -> Record:
    record = Record.objects.filter(public_id=record_id).first()
    if record is None or not is_owner(user, record):
        raise NotFound(f"No record '{record_id}' that you own.")
    return record


class RecordGitLabLinkApi(APIView):
    @extend_schema(responses=with_problem_responses({200: GitLabLinkOutput}, 404), operation_id="record_gitlab_get",
                   summary="The record's GitLab project and its recent imports")
    def get(self, request, record_id):
        record = _owned_record(record_id, request.user)
        link = GitLabLink.objects.filter(record=record).first()
        if link is None:
            raise NotFound("The record is not linked to a GitLab project.")
        return Response(GitLabLinkOutput(link, context={"request": request}).data)

    @extend_schema(request=GitLabLinkInput, responses=with_problem_responses({200: GitLabLinkCreatedOutput}, 400, 404,
                                                                             409, 503),
                   operation_id="record_gitlab_link", summary="Link the record to a (public) GitLab project")
    def put(self, request, record_id):
        record = _owned_record(record_id, request.user)
        serializer = GitLabLinkInput(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        link, secret = gitlab_link_set(record=record, actor=request.user, project=serializer.validated_data["project"])
        data = GitLabLinkOutput(link, context={"request": request}).data
        return Response({**data, "webhook_secret": secret})

    @extend_schema(responses=with_problem_responses({204: None}, 404), operation_id="record_gitlab_unlink",
                   summary="Unlink the record from its GitLab project")
    def delete(self, request, record_id):
        record = _owned_record(record_id, request.user)
        gitlab_link_remove(record=record, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RecordVersionImportApi(APIView):
    @extend_schema(request=GitLabImportInput, responses=with_problem_responses({202: GitLabImportOutput}, 400, 404,
                                                                               409),
                   operation_id="record_version_import",
                   summary="Make a new version draft from a tag of the linked GitLab project")
    def post(self, request, record_id):
        record = _owned_record(record_id, request.user)
        serializer = GitLabImportInput(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        row, _ = gitlab_import_request(record=record, actor=request.user, ref=serializer.validated_data["ref"],
                                       project=serializer.validated_data.get("project"),
                                       source=GitLabImport.Source.API)
        row = GitLabImport.objects.select_related("version").get(pk=row.pk)
        return Response(GitLabImportOutput(row).data, status=status.HTTP_202_ACCEPTED)


class GitLabWebhookOutput(serializers.Serializer):
    status = serializers.ChoiceField(choices=["queued", "known", "ignored"],
                                     help_text="queued: a new import; known: this tag was imported or is being; "
                                               "ignored: not a new tag of a linked project")
    import_id = serializers.IntegerField(required=False, help_text="The import (GET /api/records/{id}/gitlab)")


class GitLabWebhookApi(APIView):
    authentication_classes = []  # GitLab sends no credential of ours: X-Gitlab-Token is checked by the service
    permission_classes = [AllowAny]

    @extend_schema(request=None, responses={202: GitLabWebhookOutput, (403, "application/problem+json"): ProblemOutput},
                   operation_id="gitlab_webhook",
                   summary="GitLab's webhook: a pushed tag of a linked project becomes a new version draft")
    def post(self, request):
        outcome, row = gitlab_webhook_receive(token=request.headers.get("X-Gitlab-Token", ""),
                                              event=request.headers.get("X-Gitlab-Event", ""),
                                              payload=request.data if isinstance(request.data, dict) else {})
        body = {"status": outcome}
        if row is not None:
            body["import_id"] = row.pk
        return Response(body, status=status.HTTP_202_ACCEPTED)
