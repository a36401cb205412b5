"""DataCite through the `datacite` package: the only module that imports it.

Two things come from the package: the REST client (`DataCiteApi`) and the Metadata Schema 4.5 itself, as the
JSON validator and the JSON-to-XML mapping (`schema_problems`, `schema_xml_element`), which the exports use so that
the API, landing pages, OAI-PMH and backups all serialise DataCite XML the same way.

It translates the client's errors into ours. The client folds 405, 409, 422, 429 and every 5xx into one
`DataCiteServerError` without the status code, so the requests it makes are recorded to tell a permanent
refusal (422 invalid metadata) from a passing failure (503), which must be retried.
"""

import copy
import json

from datacite import DataCiteRESTClient, schema45
from datacite.errors import DataCiteError, DataCiteNotFoundError, HttpError
from datacite.request import DataCiteRequest
from requests.exceptions import ReadTimeout

from repository.doi.base import DoiRejected, DoiTimedOut, DoiUnavailable

RETRYABLE_STATUSES = {408, 425, 429}


def schema_xml_element(metadata: dict):
    """The DataCite 4.5 `<resource>` element (lxml) of metadata in the JSON shape DataCite's REST API takes."""
    return schema45.dump_etree(metadata)


def schema_problems(metadata: dict) -> list:
    """The 4.5 JSON schema's validation errors for `metadata` (jsonschema's ValidationError objects)."""
    return list(schema45.validator.iter_errors(metadata))


class _StatusRecordingRequest(DataCiteRequest):
    def __init__(self, *args, on_response, **kwargs):
        super().__init__(*args, **kwargs)
        self._on_response = on_response

    def request(self, *args, **kwargs):
        response = super().request(*args, **kwargs)
        self._on_response(response)
        return response


class _RecordingClient(DataCiteRESTClient):
    last_status: int | None = None
    last_body: str = ""

    def _create_request(self):
        return _StatusRecordingRequest(base_url=self.api_url, username=self.username, password=self.password,
                                       timeout=self.timeout, on_response=self._remember)

    def _remember(self, response) -> None:
        self.last_status, self.last_body = response.status_code, response.text[:2000]


class DataCiteApi:
    """DataCite's JSON:API `/dois`, reduced to what the provider needs; every method raises DoiUnavailable or
    DoiRejected instead of the library's errors."""

    def __init__(self, *, url: str, username: str, password: str, prefix: str, test_mode: bool, timeout: float,
                 connect_timeout: float | None = None):
        # requests takes (connect, read): an unreachable host is given up on after connect_timeout, while a slow
        # answer still has the whole read timeout.
        timeouts = timeout if connect_timeout is None else (min(connect_timeout, timeout), timeout)
        self.client = _RecordingClient(username=username, password=password, prefix=prefix, test_mode=test_mode,
                                       url=url, timeout=timeouts)

    def get(self, doi: str) -> dict | None:
        """The DOI's attributes (state, url, metadata), or None when DataCite does not know it."""
        try:
            return self._call(self.client.get_metadata, doi)
        except _NotFound:
            return None

    def create(self, attributes: dict) -> None:
        """POST /dois: `attributes` holds the doi, and the `event` to apply (none for a draft)."""
        self._call(self.client.post_doi, {"type": "dois", "attributes": copy.deepcopy(attributes)})

    def update(self, doi: str, attributes: dict) -> None:
        """PUT /dois/<doi> on a DOI that exists (DataCite would create an unknown one with 201, which the client
        takes for an error)."""
        self._call(self.client.put_doi, doi, {"type": "dois", "attributes": copy.deepcopy(attributes)})

    def delete(self, doi: str) -> None:
        """DELETE /dois/<doi> (drafts only). A DOI already gone is what was asked for: a retried delete whose first
        attempt was done but not answered must not fail."""
        try:
            self._call(self.client.delete_doi, doi)
        except _NotFound:
            return

    def _call(self, method, *args):
        self.client.last_status, self.client.last_body = None, ""
        try:
            return method(*args)
        except HttpError as exc:  # connection refused, timeout, TLS: the request may or may not have been done
            if exc.args and isinstance(exc.args[0], ReadTimeout):
                raise DoiTimedOut(f"DataCite did not answer in time: {exc}") from exc
            raise DoiUnavailable(f"DataCite did not answer: {exc}") from exc
        except DataCiteNotFoundError as exc:
            raise _NotFound() from exc
        except DataCiteError as exc:
            status = self.client.last_status
            message = f"DataCite answered {status}: {_error_titles(self.client.last_body)}"
            if status is None or status >= 500 or status in RETRYABLE_STATUSES:
                raise DoiUnavailable(message) from exc
            raise DoiRejected(message) from exc


class _NotFound(Exception):
    pass


def _error_titles(body: str) -> str:
    """The JSON:API error titles DataCite sends (`source: title`), or the start of the body."""
    try:
        errors = json.loads(body).get("errors") or []
        parts = [f"{e.get('source')}: {e.get('title')}" if e.get("source") else str(e.get("title"))
                 for e in errors if isinstance(e, dict)]
        return "; ".join(parts) or body[:300]
    except (ValueError, AttributeError):
        return body[:300]
