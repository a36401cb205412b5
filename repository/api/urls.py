from django.urls import include, path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from repository.api import records, uploads, views


class AnyPathConverter:
    """Like Django's `path` converter but also matching control characters, so that a file path with a
    newline reaches the validator and gets a 400 that says why, instead of a bare 404."""

    regex = r"[\s\S]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(AnyPathConverter, "anypath")

app_name = "api"

urlpatterns = [
    path("records", views.RecordCreateApi.as_view(), name="records"),
    path("records/<str:record_id>", records.RecordApi.as_view(), name="record"),
    path("records/<str:record_id>/versions", records.RecordVersionsApi.as_view(), name="record_versions"),
    path("records/<str:record_id>/versions/<int:number>", records.RecordVersionApi.as_view(), name="record_version"),
    path("records/<str:record_id>/versions/<int:number>/metadata", records.RecordVersionMetadataApi.as_view(),
         name="record_version_metadata"),
    path("records/<str:record_id>/versions/<int:number>/actions/withdraw", records.RecordVersionWithdrawApi.as_view(),
         name="record_version_withdraw"),
    # The GitLab app's endpoints, in this namespace (api:record_gitlab, ...); included by name, not imported.
    path("", include("repository.gitlab.api_urls")),
    # The access app's: requests, grants and share links (api:record_access_requests, ...).
    path("", include("repository.access.api_urls")),
    path("records/<str:record_id>/draft", views.DraftApi.as_view(), name="draft"),
    path("records/<str:record_id>/draft/files", views.DraftFilesApi.as_view(), name="draft_files"),
    path("records/<str:record_id>/draft/files/<anypath:file_path>", views.DraftFileApi.as_view(), name="draft_file"),
    path("records/<str:record_id>/draft/uploads", uploads.DraftUploadsApi.as_view(), name="draft_uploads"),
    path("records/<str:record_id>/draft/uploads/<uuid:upload_id>", uploads.DraftUploadApi.as_view(),
         name="draft_upload"),
    path("records/<str:record_id>/draft/uploads/<uuid:upload_id>/parts", uploads.DraftUploadPartsApi.as_view(),
         name="draft_upload_parts"),
    path("records/<str:record_id>/draft/uploads/<uuid:upload_id>/complete", uploads.DraftUploadCompleteApi.as_view(),
         name="draft_upload_complete"),
    path("uploads/<uuid:upload_id>/parts/<int:number>", uploads.UploadPartApi.as_view(), name="upload_part"),
    path("records/<str:record_id>/draft/actions/submit", views.DraftSubmitApi.as_view(), name="draft_submit"),
    path("records/<str:record_id>/draft/runs", views.DraftRunsApi.as_view(), name="draft_runs"),
    path("runs/<uuid:run_id>", views.RunApi.as_view(), name="run"),
    path("runs/<uuid:run_id>/actions/cancel", views.RunCancelApi.as_view(), name="run_cancel"),
    path("runs/<uuid:run_id>/executed-notebook", views.RunExecutedNotebookApi.as_view(), name="run_executed_notebook"),
    path("user/records", views.UserRecordsApi.as_view(), name="user_records"),
    path("schema/", SpectacularAPIView.as_view(permission_classes=[]), name="schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema", permission_classes=[]), name="docs"),
]
