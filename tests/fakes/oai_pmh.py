"""A small OAI-PMH 2.0 repository over plain HTTP on 127.0.0.1, for testing the harvester through its real client.

It answers GET and POST at `/oai` with the verbs a harvester uses, Identify and ListRecords, and `badVerb` for
the others. ListRecords follows the protocol:

- `metadataPrefix` is required (`badArgument` without it) and must be `oai_dc` or `oai_datacite`
  (`cannotDisseminateFormat` otherwise); `oai_datacite` lists only records given DataCite XML;
- `from` / `until` are inclusive, in the repository's granularity or coarser (`badArgument` for anything else);
  `set` selects the records with that setSpec;
- an empty list is the error `noRecordsMatch`;
- pages of `page_size` records in (datestamp, identifier) order; every page but the last ends with a
  resumptionToken carrying `completeListSize` and `cursor`, the last one with an empty token (when there was
  more than one page); an unknown token is `badResumptionToken`. A resumptionToken must come alone
  (`badArgument` otherwise);
- a deleted record is a header with status="deleted" and no metadata (deletedRecord "persistent").

Records are `FakeRecord`s (simple Dublin Core fields, or `oai_dc_xml` verbatim for malformed metadata);
`add()`, `delete()` change them between harvests. `list_requests()` gives the arguments of every ListRecords
request received (`forget_requests()` starts afresh).

Faults, for the harvester's error handling:
- `oai_error(code, message, times=None, verb=None)` answers an OAI-PMH `<error>` instead of the verb;
- `http_answer(status, body=b"", content_type=..., headers=None, times=None, after=0)` answers raw HTTP
  instead (an HTML page, a 404, a redirect, a 503 with Retry-After), optionally only after `after` requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit
from xml.sax.saxutils import escape, quoteattr

from tests.fakes.loopback import Exchange, LoopbackServer, Request, Response

DAY, SECOND = "YYYY-MM-DD", "YYYY-MM-DDThh:mm:ssZ"
OAI_NS = "http://www.openarchives.org/OAI/2.0/"


@dataclass
class FakeRecord:
    identifier: str
    datestamp: datetime
    title: str = ""
    creators: list[str] = field(default_factory=list)
    identifiers: list[str] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    sets: list[str] = field(default_factory=list)
    deleted: bool = False
    datacite_xml: str | None = None  # the DataCite <resource>, for oai_datacite
    oai_dc_xml: str | None = None  # verbatim metadata instead of the fields above

    def oai_dc(self) -> str:
        if self.oai_dc_xml is not None:
            return self.oai_dc_xml
        elements = [("title", self.title)] if self.title else []
        elements += [("creator", c) for c in self.creators] + [("date", d) for d in self.dates]
        elements += [("type", t) for t in self.types] + [("identifier", i) for i in self.identifiers]
        body = "".join(f"<dc:{name}>{escape(value)}</dc:{name}>" for name, value in elements)
        return ('<oai_dc:dc xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/" '
                f'xmlns:dc="http://purl.org/dc/elements/1.1/">{body}</oai_dc:dc>')


@dataclass
class _Fault:
    times: int | None  # None: until cleared
    after: int = 0
    verb: str | None = None
    oai_code: str = ""
    message: str = ""
    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


class FakeOaiPmh(LoopbackServer):
    """`with FakeOaiPmh(records, page_size=2) as server:` then harvest `server.url`."""

    def __init__(self, records: list[FakeRecord] | tuple = (), *, page_size: int = 2, granularity: str = SECOND,
                 repository_name: str = "Fake OAI-PMH repository", host: str = "127.0.0.1", port: int = 0):
        super().__init__(host=host, port=port)
        self.records = list(records)
        self.page_size = page_size
        self.granularity = granularity
        self.repository_name = repository_name
        self._oai_faults: list[_Fault] = []
        self._tokens: dict[str, tuple[dict[str, str], int]] = {}

    @property
    def url(self) -> str:
        return f"{self.base_url}/oai"

    # --- content and faults ---

    def add(self, record: FakeRecord) -> None:
        with self._lock:
            self.records = [r for r in self.records if r.identifier != record.identifier] + [record]

    def delete(self, identifier: str, at: datetime) -> None:
        with self._lock:
            for record in self.records:
                if record.identifier == identifier:
                    record.deleted, record.datestamp = True, at

    def oai_error(self, code: str, message: str = "", *, times: int | None = None, verb: str | None = None) -> None:
        with self._lock:
            self._oai_faults.append(_Fault(times=times, verb=verb, oai_code=code, message=message))

    def http_answer(self, status: int, body: bytes = b"", *, content_type: str = "text/html; charset=utf-8",
                    headers: dict[str, str] | None = None, times: int | None = None, after: int = 0) -> None:
        with self._lock:
            self._oai_faults.append(_Fault(times=times, after=after, status=status, body=body,
                                           content_type=content_type, headers=dict(headers or {})))

    def list_requests(self) -> list[dict[str, str]]:
        """The arguments of every ListRecords request so far."""
        arguments = (_arguments(request) for request in self.requests if request.url_path == "/oai")
        return [args for args in arguments if args.get("verb") == "ListRecords"]

    # --- the protocol ---

    def answer(self, request: Request, exchange: Exchange) -> Response:
        if request.url_path != "/oai":
            return Response(404, b"<html><body>Not found</body></html>", "text/html")
        arguments = _arguments(request)
        with self._lock:
            fault = self._take_oai_fault(arguments.get("verb"))
            if fault is not None and not fault.oai_code:
                return Response(fault.status, fault.body, fault.content_type, dict(fault.headers))
            if fault is not None:
                body = _error(fault.oai_code, fault.message)
            else:
                body = self._verb(arguments)
            document = (f'<?xml version="1.0" encoding="UTF-8"?><OAI-PMH xmlns="{OAI_NS}">'
                        f"<responseDate>{_stamp(datetime.now(UTC))}</responseDate>"
                        f"<request>{escape(self.url)}</request>{body}</OAI-PMH>")
            return Response(200, document.encode(), "text/xml; charset=utf-8")

    def _take_oai_fault(self, verb: str | None) -> _Fault | None:
        for fault in self._oai_faults:
            if fault.verb not in (None, verb):
                continue
            if fault.after:
                fault.after -= 1
                return None
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._oai_faults.remove(fault)
            return fault
        return None

    def _verb(self, arguments: dict[str, str]) -> str:
        verb = arguments.get("verb")
        if verb == "Identify":
            earliest = min((r.datestamp for r in self.records), default=datetime(2000, 1, 1, tzinfo=UTC))
            return (f"<Identify><repositoryName>{escape(self.repository_name)}</repositoryName>"
                    f"<baseURL>{escape(self.url)}</baseURL><protocolVersion>2.0</protocolVersion>"
                    "<adminEmail>admin@example.org</adminEmail>"
                    f"<earliestDatestamp>{self._format(earliest)}</earliestDatestamp>"
                    f"<deletedRecord>persistent</deletedRecord><granularity>{self.granularity}</granularity>"
                    "</Identify>")
        if verb == "ListRecords":
            return self._list_records(arguments)
        return _error("badVerb", f"Illegal OAI verb: {verb}")

    def _list_records(self, arguments: dict[str, str]) -> str:
        token = arguments.get("resumptionToken")
        if token is not None:
            if set(arguments) != {"verb", "resumptionToken"}:
                return _error("badArgument", "resumptionToken is an exclusive argument")
            if token not in self._tokens:
                return _error("badResumptionToken", "The token is invalid or has expired")
            arguments, offset = self._tokens[token]
        else:
            offset = 0
            unknown = set(arguments) - {"verb", "metadataPrefix", "from", "until", "set"}
            if unknown:
                return _error("badArgument", f"Illegal arguments: {', '.join(sorted(unknown))}")
            if "metadataPrefix" not in arguments:
                return _error("badArgument", "metadataPrefix is required")
        prefix = arguments["metadataPrefix"]
        if prefix not in ("oai_dc", "oai_datacite"):
            return _error("cannotDisseminateFormat", f"The metadata format {prefix!r} is not supported")
        bounds = {}
        for name in ("from", "until"):
            if name in arguments:
                parsed = self._parse(arguments[name], upper=name == "until")
                if parsed is None:
                    return _error("badArgument", f"The value of {name!r} is not a valid date in this repository")
                bounds[name] = parsed
        selected = sorted(
            (r for r in self.records
             if (prefix == "oai_dc" or r.datacite_xml is not None or r.deleted)
             and ("set" not in arguments or arguments["set"] in r.sets)
             and ("from" not in bounds or r.datestamp >= bounds["from"])
             and ("until" not in bounds or r.datestamp <= bounds["until"])),
            key=lambda r: (r.datestamp, r.identifier))
        if not selected:
            return _error("noRecordsMatch", "No records match the request")
        page = selected[offset:offset + self.page_size]
        body = "".join(self._record(r, prefix) for r in page)
        if offset + self.page_size < len(selected):
            next_token = f"t{len(self._tokens) + 1}"
            self._tokens[next_token] = (arguments, offset + self.page_size)
            body += (f'<resumptionToken completeListSize="{len(selected)}" cursor="{offset}">{next_token}'
                     "</resumptionToken>")
        elif offset:
            body += f'<resumptionToken completeListSize="{len(selected)}" cursor="{offset}"/>'
        return f"<ListRecords>{body}</ListRecords>"

    def _record(self, record: FakeRecord, prefix: str) -> str:
        sets = "".join(f"<setSpec>{escape(s)}</setSpec>" for s in record.sets)
        status = ' status="deleted"' if record.deleted else ""
        header = (f"<header{status}><identifier>{escape(record.identifier)}</identifier>"
                  f"<datestamp>{self._format(record.datestamp)}</datestamp>{sets}</header>")
        if record.deleted:
            return f"<record>{header}</record>"
        metadata = record.datacite_xml if prefix == "oai_datacite" else record.oai_dc()
        return f"<record>{header}<metadata>{metadata}</metadata></record>"

    def _format(self, value: datetime) -> str:
        return value.strftime("%Y-%m-%d") if self.granularity == DAY else _stamp(value)

    def _parse(self, value: str, *, upper: bool) -> datetime | None:
        try:
            if len(value) == 10:
                day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
                return day + timedelta(days=1, microseconds=-1) if upper else day
            if self.granularity == DAY:
                return None  # finer than the repository supports
            return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return None


def _error(code: str, message: str) -> str:
    return f"<error code={quoteattr(code)}>{escape(message)}</error>"


def _stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _arguments(request: Request) -> dict[str, str]:
    """The OAI-PMH arguments: the query string of a GET, the form body of a POST."""
    query = request.body.decode() if request.method == "POST" else urlsplit(request.path).query
    return dict(parse_qsl(query))
