from django.urls import path, re_path

from moderation import api

app_name = "moderation_api"

urlpatterns = [
    path("communities", api.CommunityListApi.as_view(), name="communities"),
    path("communities/<slug:slug>", api.CommunityApi.as_view(), name="community"),
    path("requests", api.RequestListApi.as_view(), name="requests"),
    path("requests/<int:request_id>", api.RequestApi.as_view(), name="request"),
    path("requests/<int:request_id>/timeline", api.TimelineApi.as_view(), name="timeline"),
    re_path(r"^requests/(?P<request_id>[0-9]+)/actions/(?P<action>accept|decline|request-changes|cancel|resubmit)$",
            api.ActionApi.as_view(), name="action"),
]
