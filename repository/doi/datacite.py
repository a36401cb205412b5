"""DataCite as the registrar (DOI_PROVIDER=datacite): prefix, credentials, API URL and test mode are settings."""

from django.conf import settings

from repository.doi.base import DoiProvider, RegistrarDoi
from repository.integrations.datacite import DataCiteApi

# The API-only members DataCite answers besides the metadata; not sent back.
READ_ONLY = ("state", "url", "doi", "prefix", "suffix", "event")


class DataCiteDoiProvider(DoiProvider):
    name = "datacite"

    def __init__(self, api: DataCiteApi | None = None):
        self.api = api or DataCiteApi(
            url=settings.DATACITE_API_URL, username=settings.DATACITE_USERNAME,
            password=settings.DATACITE_PASSWORD, prefix=settings.DOI_PREFIX,
            test_mode=settings.DATACITE_TEST_MODE, timeout=settings.DATACITE_TIMEOUT,
            connect_timeout=settings.DATACITE_CONNECT_TIMEOUT)

    def get(self, doi: str) -> RegistrarDoi | None:
        attributes = self.api.get(doi)
        if attributes is None:
            return None
        return RegistrarDoi(doi=attributes.get("doi", doi).lower(), state=attributes.get("state") or "draft",
                            url=attributes.get("url") or "")

    def reserve(self, doi: str, metadata: dict) -> None:
        self.api.create({**_strip(metadata), "doi": doi})

    def delete_draft(self, doi: str) -> None:
        self.api.delete(doi)

    def make_findable(self, doi: str, metadata: dict, url: str, *, exists: bool) -> None:
        attributes = {**_strip(metadata), "doi": doi, "url": url, "event": "publish"}
        self.api.update(doi, attributes) if exists else self.api.create(attributes)

    def make_registered(self, doi: str, metadata: dict, url: str, *, exists: bool) -> None:
        current = self.get(doi) if exists else None
        attributes = {**_strip(metadata), "doi": doi, "url": url}
        if current is None:
            self.api.create({**attributes, "event": "register"})
        elif current.state == "findable":
            self.api.update(doi, {**attributes, "event": "hide"})
        elif current.state == "draft":
            self.api.update(doi, {**attributes, "event": "register"})
        else:
            self.api.update(doi, attributes)


def _strip(metadata: dict) -> dict:
    return {key: value for key, value in metadata.items() if key not in READ_ONLY}
