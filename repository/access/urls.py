"""The access app's web pages (namespace `access`), included at the root by repository/urls.py."""

from django.urls import path

from repository.access import views

app_name = "access"

urlpatterns = [
    path("records/<str:record_id>/access/", views.manage, name="manage"),
    path("records/<str:record_id>/access/request/", views.request_access, name="request"),
    path("records/<str:record_id>/access/requests/<int:number>/accept/", views.request_accept, name="accept"),
    path("records/<str:record_id>/access/requests/<int:number>/decline/", views.request_decline, name="decline"),
    path("records/<str:record_id>/access/grants/<int:grant_id>/revoke/", views.grant_revoke, name="grant_revoke"),
    path("records/<str:record_id>/access/links/", views.link_create, name="link_create"),
    path("records/<str:record_id>/access/links/<int:link_id>/revoke/", views.link_revoke, name="link_revoke"),
    # The secret link itself, and the read-only draft it may lead to.
    path("access/share/<str:token>", views.share_redeem, name="share"),
    path("access/shared/<str:record_id>/draft/", views.shared_draft, name="shared_draft"),
    path("access/shared/<str:record_id>/draft/files/<path:file_path>", views.shared_draft_file,
         name="shared_draft_file"),
]
