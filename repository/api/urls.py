from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from repository.api import views

app_name = "api"

urlpatterns = [
    path("records", views.RecordCreateApi.as_view(), name="records"),
    path("records/<str:record_id>/draft", views.DraftApi.as_view(), name="draft"),
    path("records/<str:record_id>/draft/files", views.DraftFilesApi.as_view(), name="draft_files"),
    path("records/<str:record_id>/draft/files/<path:file_path>", views.DraftFileApi.as_view(), name="draft_file"),
    path("user/records", views.UserRecordsApi.as_view(), name="user_records"),
    path("schema/", SpectacularAPIView.as_view(permission_classes=[]), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema", permission_classes=[]), name="docs"),
]
