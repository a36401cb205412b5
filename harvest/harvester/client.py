"""The OAI-PMH client the harvester reads other repositories with: the only module importing `oaipmh_scythe`.

Scythe sends the requests (GET, retried on 429, 502-504 and connection failures), follows resumption tokens
and turns OAI-PMH `<error>`s into exceptions; this module parses each response again with the strict parser of
metadata.py (remote XML is untrusted), hands out plain dataclasses, and translates every failure into one of:

- `SourceUnreachable`: no HTTP answer (DNS, refused connection, timeout) or a 5xx after the retries;
- `NotOaiPmh`: an answer, but not OAI-PMH (an HTML page, a 404, a redirect, XML of another kind);
- `OaiProtocolError`: an OAI-PMH error the source answered (badArgument, cannotDisseminateFormat, ...), with its
  code and message. `noRecordsMatch` is not an error: the list is simply empty.

Every message is one line, with the source's own text stripped of control characters, so a hostile server cannot
write escape sequences to the terminal of whoever runs the harvest.
"""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Self

import httpx2
import oaipmh_scythe
from lxml import etree
from oaipmh_scythe import HTTPConfig, RetryConfig, Scythe
from oaipmh_scythe.iterator import OAIResponseIterator

from harvest.harvester.metadata import MetadataUnreadable, parse_untrusted_xml
from repository.errors import NbarchiveError

OAI = "{http://www.openarchives.org/OAI/2.0/}"
USER_AGENT = "nbarchive-harvester/0.1 (OAI-PMH; oaipmh-scythe)"
# A source's Retry-After is obeyed up to this many seconds; beyond it the harvest waits this long instead.
MAX_RETRY_AFTER = 120
MAX_MESSAGE = 300
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]+")


class HarvestError(NbarchiveError):
    status = 502
    code = "harvest_failed"
    title = "The harvest failed"


class SourceUnreachable(HarvestError):
    code = "harvest_source_unreachable"
    title = "The OAI-PMH source could not be reached"


class NotOaiPmh(HarvestError):
    code = "harvest_not_oai_pmh"
    title = "The URL does not answer as an OAI-PMH endpoint"


class OaiProtocolError(HarvestError):
    code = "harvest_oai_error"
    title = "The OAI-PMH source answered with an error"

    def __init__(self, detail: str = "", *, oai_code: str = ""):
        self.oai_code = oai_code
        super().__init__(detail)


@dataclass(frozen=True)
class Identity:
    repository_name: str
    granularity: str  # "YYYY-MM-DD" or "YYYY-MM-DDThh:mm:ssZ"
    deleted_record: str  # no, transient, persistent


@dataclass(frozen=True)
class HarvestItem:
    identifier: str
    datestamp: str
    deleted: bool
    set_specs: tuple[str, ...]
    metadata: bytes | None  # the element inside <metadata>, serialised; None for deleted items


@dataclass(frozen=True)
class RecordsPage:
    items: list[HarvestItem]
    complete_list_size: int | None  # from the resumptionToken, when the source states it


class _Scythe(Scythe):
    def _get_retry_after(self, http_response) -> float:
        # Scythe obeys any Retry-After in seconds and fails on the HTTP-date form; cap the one, survive the other.
        try:
            return min(float(super()._get_retry_after(http_response)), MAX_RETRY_AFTER)
        except ValueError:
            return self.default_retry_after


class OaiClient:
    """`with OaiClient(base_url) as client:` then `client.identify()` and `client.list_records(...)`."""

    def __init__(self, base_url: str, *, timeout: float = 60, retries: int = 2, retry_after: float = 10):
        self.base_url = base_url
        self._scythe = _Scythe(
            base_url,
            http_config=HTTPConfig(timeout=timeout, user_agent=USER_AGENT),
            retry_config=RetryConfig(max_retries=retries, retry_status_codes=(429, 502, 503, 504),
                                     default_retry_after=retry_after, retry_on_transport_error=True),
            iterator=OAIResponseIterator,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._scythe.close()

    def identify(self) -> Identity:
        """The source's Identify answer; the first request of a harvest, so it is what tells a wrong URL."""
        with self._errors_translated():
            response = self._scythe.harvest({"verb": "Identify"})
        identify = self._verb_element(response, "Identify")
        return Identity(
            repository_name=one_line(identify.findtext(f"{OAI}repositoryName") or ""),
            granularity=(identify.findtext(f"{OAI}granularity") or "YYYY-MM-DD").strip(),
            deleted_record=(identify.findtext(f"{OAI}deletedRecord") or "").strip(),
        )

    def list_records(self, *, metadata_prefix: str, set_spec: str = "", from_: str = "") -> Iterator[RecordsPage]:
        """ListRecords, one page at a time (Scythe follows the resumption tokens). Empty when nothing matches."""
        pages = self._scythe.list_records(from_=from_ or None, metadata_prefix=metadata_prefix, set_=set_spec or None)
        while True:
            with self._errors_translated():
                try:
                    response = next(pages)
                except (StopIteration, oaipmh_scythe.NoRecordsMatch):
                    return
            yield self._records_page(response)

    # --- responses ---

    def _verb_element(self, response, verb: str) -> etree._Element:
        try:
            root = parse_untrusted_xml(response.http_response.content)
        except MetadataUnreadable as exc:
            raise NotOaiPmh(f"{self.base_url} is not an OAI-PMH endpoint: its answer is {exc}") from exc
        if root.tag != f"{OAI}OAI-PMH":
            raise NotOaiPmh(f"{self.base_url} is not an OAI-PMH endpoint: it answered "
                            f"<{one_line(etree.QName(root).localname)}> instead of <OAI-PMH>")
        element = root.find(f"{OAI}{verb}")
        if element is None:
            raise NotOaiPmh(f"{self.base_url} answered an OAI-PMH document without <{verb}>")
        return element

    def _records_page(self, response) -> RecordsPage:
        list_records = self._verb_element(response, "ListRecords")
        items = [_harvest_item(record) for record in list_records.iterfind(f"{OAI}record")]
        token = list_records.find(f"{OAI}resumptionToken")
        size = token.get("completeListSize") if token is not None else None
        return RecordsPage(items=items, complete_list_size=int(size) if size and size.isdigit() else None)

    # --- errors ---

    @contextmanager
    def _errors_translated(self):
        url = self.base_url
        try:
            yield
        except oaipmh_scythe.OAIPMHException as exc:
            name = type(exc).__name__
            code = "error" if name == "GeneralOAIPMHError" else name[0].lower() + name[1:]
            message = one_line(str(exc)) or "no message"
            raise OaiProtocolError(f"{url} answered the OAI-PMH error {code}: {message}", oai_code=code) from exc
        except httpx2.HTTPStatusError as exc:
            status = exc.response.status_code
            if 300 <= status < 400:
                location = one_line(exc.response.headers.get("location", ""))
                raise NotOaiPmh(f"{url} redirects (HTTP {status}) to {location or 'another address'}; "
                                f"harvest that URL instead") from exc
            if status >= 500:
                raise SourceUnreachable(f"{url} failed with HTTP {status}") from exc
            raise NotOaiPmh(f"{url} is not an OAI-PMH endpoint: HTTP {status}") from exc
        except (httpx2.InvalidURL, httpx2.UnsupportedProtocol) as exc:
            raise NotOaiPmh(f"{url} is not a URL the harvester can read ({one_line(str(exc))})") from exc
        except httpx2.TimeoutException as exc:
            raise SourceUnreachable(f"{url} did not answer in time") from exc
        except httpx2.TransportError as exc:
            raise SourceUnreachable(f"{url} could not be reached ({one_line(str(exc)) or type(exc).__name__})") \
                from exc
        except httpx2.HTTPError as exc:
            raise HarvestError(f"{url}: {one_line(str(exc))}") from exc
        except (AttributeError, etree.XMLSyntaxError) as exc:
            # Scythe parses with recover=True: a body that is not XML at all becomes None, and Scythe then fails
            # on it with an AttributeError rather than one of its own errors.
            raise NotOaiPmh(f"{url} is not an OAI-PMH endpoint: its answer is not XML") from exc


def _harvest_item(record: etree._Element) -> HarvestItem:
    header = record.find(f"{OAI}header")
    if header is None:
        return HarvestItem(identifier="", datestamp="", deleted=False, set_specs=(), metadata=None)
    deleted = header.get("status") == "deleted"
    metadata = record.find(f"{OAI}metadata")
    content = next(iter(metadata.iterchildren(etree.Element)), None) if metadata is not None else None
    return HarvestItem(
        identifier=(header.findtext(f"{OAI}identifier") or "").strip(),
        datestamp=(header.findtext(f"{OAI}datestamp") or "").strip(),
        deleted=deleted,
        set_specs=tuple(s.text.strip() for s in header.iterfind(f"{OAI}setSpec") if s.text and s.text.strip()),
        metadata=None if content is None or deleted else etree.tostring(content, encoding="utf-8", with_tail=False),
    )


def one_line(text: str) -> str:
    """`text` on one line, without control or bidi characters, and not too long to read."""
    text = _UNPRINTABLE.sub(" ", text).strip()
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"
