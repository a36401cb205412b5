"""The interface every DOI registrar implements, and how the configured one is chosen.

The primitives follow DataCite's model, which any registrar we plug in must map onto: a DOI is `draft`
(reserved, not resolvable, deletable), `registered` (resolves, hidden from search) or `findable`. Nothing goes
back to draft, and only drafts can be deleted. `repository/services/dois.py` reconciles the state we want with
what `get` reports, so every call here may be repeated safely.
"""

from dataclasses import dataclass

from django.conf import settings
from django.utils.module_loading import import_string


class DoiUnavailable(Exception):
    """The registrar did not answer or failed on its side (timeouts, 5xx, 429): try again later."""


class DoiTimedOut(DoiUnavailable):
    """The registrar accepted the connection but did not answer within the read timeout: it hangs, so trying again
    at once would only hold the worker as long again."""


class DoiRejected(Exception):
    """The registrar refused the request (bad credentials, invalid metadata, a DOI that is not ours):
    retrying the same request cannot help; an admin has to look."""


@dataclass(frozen=True)
class RegistrarDoi:
    doi: str
    state: str  # draft | registered | findable
    url: str


class DoiProvider:
    name = "base"

    def get(self, doi: str) -> RegistrarDoi | None:
        """What the registrar holds for `doi`, or None when it has never heard of it."""
        raise NotImplementedError

    def reserve(self, doi: str, metadata: dict) -> None:
        """Create `doi` as a draft (it must not exist yet)."""
        raise NotImplementedError

    def delete_draft(self, doi: str) -> None:
        """Delete a draft DOI (a discarded draft version)."""
        raise NotImplementedError

    def make_findable(self, doi: str, metadata: dict, url: str, *, exists: bool) -> None:
        """Create or update `doi` with `metadata` and `url` and make it findable."""
        raise NotImplementedError

    def make_registered(self, doi: str, metadata: dict, url: str, *, exists: bool) -> None:
        """Create or update `doi` so that it resolves to `url` but is hidden from search (a tombstone)."""
        raise NotImplementedError


PROVIDERS = {
    "local": "repository.doi.local.LocalDoiProvider",
    "datacite": "repository.doi.datacite.DataCiteDoiProvider",
}


def get_provider() -> DoiProvider:
    return import_string(PROVIDERS[settings.DOI_PROVIDER])()
