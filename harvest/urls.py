"""URLs of the harvest app: the OAI-PMH endpoint (included at /oai by the root URLconf)."""

from django.urls import path

from harvest.provider.views import oai_endpoint

app_name = "harvest"

urlpatterns = [
    path("", oai_endpoint, name="oai"),
]
