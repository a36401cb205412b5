"""The GitLab app's API endpoints, included by repository/api/urls.py inside the `api` namespace."""

from django.urls import path

from repository.gitlab import api

urlpatterns = [
    path("records/<str:record_id>/gitlab", api.RecordGitLabLinkApi.as_view(), name="record_gitlab"),
    path("records/<str:record_id>/versions/import", api.RecordVersionImportApi.as_view(),
         name="record_version_import"),
    path("hooks/gitlab", api.GitLabWebhookApi.as_view(), name="gitlab_webhook"),
]
