"""The access app's API endpoints, included by repository/api/urls.py inside the `api` namespace."""

from django.urls import path

from repository.access import api

urlpatterns = [
    path("records/<str:record_id>/access/requests", api.RecordAccessRequestsApi.as_view(),
         name="record_access_requests"),
    path("records/<str:record_id>/access/requests/<int:number>/actions/accept", api.AccessRequestAcceptApi.as_view(),
         name="record_access_request_accept"),
    path("records/<str:record_id>/access/requests/<int:number>/actions/decline",
         api.AccessRequestDeclineApi.as_view(), name="record_access_request_decline"),
    path("records/<str:record_id>/access/grants", api.RecordAccessGrantsApi.as_view(), name="record_access_grants"),
    path("records/<str:record_id>/access/grants/<int:grant_id>", api.AccessGrantApi.as_view(),
         name="record_access_grant"),
    path("records/<str:record_id>/access/links", api.RecordShareLinksApi.as_view(), name="record_share_links"),
    path("records/<str:record_id>/access/links/<int:link_id>", api.ShareLinkApi.as_view(), name="record_share_link"),
]
