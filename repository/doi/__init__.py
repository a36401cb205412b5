"""DOI registrars behind one interface, chosen by settings.DOI_PROVIDER (`local` or `datacite`)."""

from repository.doi.base import DoiProvider, DoiRejected, DoiTimedOut, DoiUnavailable, RegistrarDoi, get_provider

__all__ = ["DoiProvider", "DoiRejected", "DoiTimedOut", "DoiUnavailable", "RegistrarDoi", "get_provider"]
