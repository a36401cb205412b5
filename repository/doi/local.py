"""The embedded registrar: DOIs under the test prefix 10.5072, kept in our own table and resolved by the app
at `/doi/<doi>`. It follows DataCite's state rules so that the embedded default behaves like production."""

from django.db import transaction

from repository.doi.base import DoiProvider, DoiRejected, RegistrarDoi
from repository.models import DoiState, LocalDoi


class LocalDoiProvider(DoiProvider):
    name = "local"

    def get(self, doi: str) -> RegistrarDoi | None:
        row = LocalDoi.objects.filter(doi=doi.lower()).first()
        if row is None or row.state == DoiState.DELETED:
            return None
        return RegistrarDoi(doi=row.doi, state=row.state, url=row.url)

    def reserve(self, doi: str, metadata: dict) -> None:
        _, created = LocalDoi.objects.get_or_create(
            doi=doi.lower(), defaults={"state": DoiState.DRAFT, "metadata": metadata})
        if not created:
            raise DoiRejected(f"The DOI {doi} has already been taken.")

    @transaction.atomic
    def delete_draft(self, doi: str) -> None:
        row = LocalDoi.objects.select_for_update().filter(doi=doi.lower()).first()
        if row is None or row.state == DoiState.DELETED:
            return
        if row.state != DoiState.DRAFT:
            raise DoiRejected(f"The DOI {doi} is {row.state}; only drafts can be deleted.")
        # The row stays, marked deleted, so that the name is never taken again.
        row.state = DoiState.DELETED
        row.save(update_fields=["state", "updated"])

    def make_findable(self, doi: str, metadata: dict, url: str, *, exists: bool) -> None:
        self._put(doi, DoiState.FINDABLE, metadata, url)

    def make_registered(self, doi: str, metadata: dict, url: str, *, exists: bool) -> None:
        self._put(doi, DoiState.REGISTERED, metadata, url)

    @transaction.atomic
    def _put(self, doi: str, state: str, metadata: dict, url: str) -> None:
        row, _ = LocalDoi.objects.select_for_update().get_or_create(
            doi=doi.lower(), defaults={"state": DoiState.DRAFT})
        if row.state == DoiState.DELETED:
            raise DoiRejected(f"The DOI {doi} was deleted as a draft; its name cannot be used again.")
        row.state, row.metadata, row.url = state, metadata, url
        row.save()
