"""Root URLconf: the REST API under /api/, accounts, admin, and the web pages of each app."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("api/", include("repository.api.urls")),
    path("api/", include("moderation.api_urls")),
    path("requests/", include("moderation.urls")),
    path("communities/", include("moderation.community_urls")),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
    path("oai", include("harvest.urls")),
    path("", include("repository.access.urls")),
    path("", include("repository.web.urls")),
]

handler404 = "repository.web.errors.not_found"
handler500 = "repository.web.errors.server_error"
