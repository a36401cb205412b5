from django.urls import path

from moderation import community_views

app_name = "communities"

urlpatterns = [
    path("", community_views.community_list, name="list"),
    path("<slug:slug>/", community_views.community_detail, name="detail"),
]
