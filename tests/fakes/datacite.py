"""A fake of DataCite's REST API (the JSON:API `/dois` endpoints) over plain HTTP on 127.0.0.1, for tests.

It speaks the wire protocol, so tests drive the real `datacite.DataCiteRESTClient` (test_mode=False,
url=server.url) or raw `requests` against it. The rules follow DataCite's documentation and its API server (lupo:
DataciteDoisController, the Doi model and DataciteDoiSerializer):

- POST /dois creates (201); PUT /dois/<doi> updates (200) or, for an unused name, creates (201); GET answers the
  DOI (200) or 404; DELETE removes a draft (204). A non-draft answers 405 with an Allow header, as lupo does.
- States: a new DOI is a draft; the `event` attribute moves it: register (draft to registered), publish (draft or
  registered to findable), hide (findable to registered). Any other move is silently ignored, as DataCite's state
  machine (whiny_transitions: false) ignores it: `hide` on a draft answers 200 and changes nothing.
- Registered and findable DOIs need a `url` and metadata valid against the DataCite 4.5 JSON schema bundled with
  the `datacite` package; a failing write is 422 with JSON:API errors whose `source` names the attribute, and
  nothing of it is stored.
- Basic auth: wrong credentials are 401 on any request; a request without credentials may only read findable
  DOIs (others are 404 to it). Creating under a prefix the repository does not own is 403.
- Answers are shaped like lupo's: `publisher` is a string unless the query has publisher=true, affiliations are
  names unless affiliation=true, `publicationYear` is an integer, missing lists are [].

Stricter than DataCite, on purpose (each would otherwise hide a mistake in our provider):
- input must be valid against the 4.5 schema as written: DataCite also accepts (and normalises) a publisher string
  or an integer publicationYear, which the schema does not allow;
- an attribute the schema does not know is a 422: DataCite drops it silently, losing a misspelt field;
- a deleted draft's name can never be created again (422 "This DOI has already been taken"): DataCite forgets
  a deleted draft, but our rule is never to reuse one;
- `url` must be http or https (DataCite also takes ftp); `xml` metadata is refused, the fake reads only JSON.

Faults, for tests of retries and timeouts (each can be limited to one HTTP method):
- `fail_next(n, status)` / `fail_with(status)` answer an error without carrying out the request;
- `hang(seconds)` waits, then closes the connection: the request is NOT carried out;
- `lose_next(n, delay=...)` carries the request out, then waits and closes the connection without answering,
  as DataCite may carry out a request whose answer never arrives;
- `failure_rate=0.3, failure_seed=...` (or `fail_randomly`) fails that share of all requests at random, seeded,
  as DataCite did at a 30% rate in the fault injection of issue 18.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
from base64 import b64decode
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from jsonschema.validators import validator_for

from tests.fakes.loopback import Exchange, Fault, LoopbackServer, Request, Response

JSONAPI_CONTENT_TYPE = "application/vnd.api+json; charset=utf-8"
SCHEMA_VERSION = "http://datacite.org/schema/kernel-4"  # what DataCite stores when a client sends none
TAKEN = "This DOI has already been taken"

DRAFT, REGISTERED, FINDABLE = "draft", "registered", "findable"
# event -> {from state: to state}; a pair not listed is no transition (and no error), like DataCite.
TRANSITIONS = {
    "register": {DRAFT: REGISTERED},
    "publish": {DRAFT: FINDABLE, REGISTERED: FINDABLE},
    "hide": {FINDABLE: REGISTERED},
}

# lupo's format check for new DOI names (validates_format_of :doi), applied to the lower-cased name.
DOI_PATTERN = re.compile(r"^10\.\d{4,5}/[-._;()/:a-z0-9*~$=]+$")
CROCKFORD_BASE32 = "0123456789abcdefghjkmnpqrstvwxyz"  # DataCite's random suffixes look like "f3wn-1b61"


def _load_schema_validator():
    # The schema's $refs are all local (#/definitions/...), so no resolver is needed.
    schema = json.loads((resources.files("datacite") / "schemas/datacite-v4.5.json").read_text())
    validator_class = validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


SCHEMA_VALIDATOR = _load_schema_validator()
# Keys the API handles itself, although the schema lists them; they are never stored as metadata.
API_KEYS = frozenset({"doi", "prefix", "suffix", "event", "url"})
METADATA_KEYS = frozenset(SCHEMA_VALIDATOR.schema["properties"]) - API_KEYS
# Attributes DataCite sends in its answers and ignores when they come back, so a client may PUT what it GOT.
READ_ONLY_KEYS = frozenset({
    "identifiers", "contentUrl", "metadataVersion", "source", "isActive", "state", "reason", "landingPage",
    "viewCount", "viewsOverTime", "downloadCount", "downloadsOverTime", "referenceCount", "citationCount",
    "citationsOverTime", "partCount", "partOfCount", "versionCount", "versionOfCount", "created", "registered",
    "published", "updated",
})
LIST_KEYS = (
    "creators", "titles", "subjects", "contributors", "dates", "alternateIdentifiers", "relatedIdentifiers",
    "relatedItems", "sizes", "formats", "rightsList", "descriptions", "geoLocations", "fundingReferences",
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- answers ----------------------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def error_answer(status: int, title: str | None = None, headers: dict[str, str] | None = None) -> Answer:
    """An error that is not about one attribute, shaped like lupo's: {"errors": [{"status": "404", "title": ...}]}."""
    if title is None:
        try:
            title = HTTPStatus(status).phrase
        except ValueError:  # a status with no standard name, which a test may still ask for
            title = "Error"
    return Answer(status, {"errors": [{"status": str(status), "title": title}]}, dict(headers or {}))


def invalid(errors: list[dict[str, str]]) -> Answer:
    """422 with one error per problem; `source` names the attribute, as lupo's serialize_errors does."""
    return Answer(422, {"errors": errors})


def attribute_error(source: str, title: str, doi: str | None) -> dict[str, str]:
    error = {"source": source, "uid": doi, "title": title}
    return {key: value for key, value in error.items() if value is not None}


# --- stored DOIs ------------------------------------------------------------------------------------------------


@dataclass
class Record:
    doi: str
    state: str
    url: str | None
    metadata: dict[str, Any]
    created: str
    updated: str
    registered: str | None = None

    @property
    def prefix(self) -> str:
        return self.doi.split("/", 1)[0]

    @property
    def suffix(self) -> str:
        return self.doi.split("/", 1)[1]

    def as_dict(self) -> dict[str, Any]:
        return copy.deepcopy({
            "doi": self.doi, "prefix": self.prefix, "suffix": self.suffix, "state": self.state, "url": self.url,
            "metadata": self.metadata, "created": self.created, "updated": self.updated,
            "registered": self.registered,
        })


class Registry:
    """DataCite's bookkeeping and rules, without HTTP. Not thread-safe: the server calls it under its lock."""

    def __init__(self, prefixes: tuple[str, ...], client_id: str):
        self.prefixes = frozenset(prefix.lower() for prefix in prefixes)
        self.client_id = client_id
        self.records: dict[str, Record] = {}
        self.deleted: set[str] = set()

    # --- the four operations ---

    def create(self, doi: str | None, attributes: dict[str, Any]) -> Answer:
        if doi is None:
            doi = self._doi_from(attributes)
            if doi is None:
                return invalid([attribute_error("doi", "Can't be blank", None)])
        doi = doi.lower()
        if "/" not in doi:
            return invalid([attribute_error("doi", "Is invalid", doi)])
        if doi.split("/", 1)[0] not in self.prefixes:
            # CanCan's authorize! runs before validation, so a foreign prefix is 403 even for a taken name.
            return error_answer(403, "You are not authorized to access this resource.")
        if doi in self.records or doi in self.deleted:
            return invalid([attribute_error("doi", TAKEN, doi)])
        if not DOI_PATTERN.match(doi):
            return invalid([attribute_error("doi", "Is invalid", doi)])
        now = _now()
        record = Record(doi=doi, state=DRAFT, url=None, metadata={"schemaVersion": SCHEMA_VERSION},
                        created=now, updated=now)
        return self._save(record, attributes, status=201)

    def update(self, doi: str, attributes: dict[str, Any]) -> Answer:
        record = self.records.get(doi.lower())
        if record is None:
            # DataCite's PUT creates an unknown DOI, from the name in the path, and answers 201.
            return self.create(doi, attributes)
        return self._save(copy.deepcopy(record), attributes, status=200)

    def show(self, doi: str, *, authenticated: bool, query: dict[str, list[str]]) -> Answer:
        record = self.records.get(doi.lower())
        # Drafts and registered DOIs are private: to anyone but their repository they do not exist.
        if record is None or (record.state != FINDABLE and not authenticated):
            return error_answer(404, "The resource you are looking for doesn't exist.")
        return Answer(200, self.resource(record, query))

    def delete(self, doi: str) -> Answer:
        record = self.records.get(doi.lower())
        if record is None:
            return error_answer(404, "The resource you are looking for doesn't exist.")
        if record.state != DRAFT:
            # Registered and findable DOIs are permanent: lupo answers 405 and lists the methods it allows.
            return error_answer(405, "Method not allowed", {"Allow": "HEAD, GET, POST, PATCH, PUT, OPTIONS"})
        del self.records[record.doi]
        self.deleted.add(record.doi)
        return Answer(204)

    # --- writing ---

    def _doi_from(self, attributes: dict[str, Any]) -> str | None:
        """The name a POST asks for: `doi`, or `prefix` + `suffix`, or `prefix` alone for a random suffix."""
        if attributes.get("doi"):
            return str(attributes["doi"])
        prefix = attributes.get("prefix")
        if not prefix:
            return None
        if attributes.get("suffix"):
            return f"{prefix}/{attributes['suffix']}"
        return self._random_doi(str(prefix).lower())

    def _random_doi(self, prefix: str) -> str:
        while True:
            chars = "".join(secrets.choice(CROCKFORD_BASE32) for _ in range(8))
            doi = f"{prefix}/{chars[:4]}-{chars[4:]}"
            if doi not in self.records and doi not in self.deleted:
                return doi

    def _save(self, record: Record, attributes: dict[str, Any], *, status: int) -> Answer:
        """Apply `attributes` to `record` (a copy), check it, and store it only if it is valid."""
        errors = self._apply(record, attributes)
        if not errors:
            errors = self._validate(record)
        if errors:
            return invalid(errors)
        record.updated = _now()
        if record.state != DRAFT and record.registered is None:
            record.registered = record.updated
        self.records[record.doi] = record
        return Answer(status, self.resource(record, {}))

    def _apply(self, record: Record, attributes: dict[str, Any]) -> list[dict[str, str]]:
        errors = []
        for key in sorted(attributes):
            if key not in METADATA_KEYS and key not in API_KEYS and key not in READ_ONLY_KEYS and key != "xml":
                errors.append(attribute_error(key, f"Unknown attribute {key!r} (DataCite would drop it)", record.doi))
        if attributes.get("xml"):
            errors.append(attribute_error("xml", "The fake reads JSON attributes only, not XML", record.doi))
        event = attributes.get("event")
        if event is not None and event not in TRANSITIONS:
            errors.append(attribute_error("event", f"Unknown event {event!r}", record.doi))
        if errors:
            return errors
        for key in METADATA_KEYS & attributes.keys():
            # A null removes the value; the schema has no nulls, so storing one would only fail validation later.
            if attributes[key] is None:
                record.metadata.pop(key, None)
            else:
                record.metadata[key] = copy.deepcopy(attributes[key])
        if "url" in attributes:
            record.url = attributes["url"]
        if event is not None:
            record.state = TRANSITIONS[event].get(record.state, record.state)
        return []

    def _validate(self, record: Record) -> list[dict[str, str]]:
        errors = []
        if record.url is not None and not re.match(r"^https?://\S+$", str(record.url)):
            errors.append(attribute_error("url", "URL is not valid", record.doi))
        # A draft needs only its name, but what it has must still be well formed (lupo checks titles, creators,
        # dates... whatever the state); registered and findable DOIs need the schema's required attributes too.
        complete = record.state != DRAFT
        if complete and not record.url:
            errors.append(attribute_error("url", "Can't be blank", record.doi))
        errors.extend(schema_errors({**record.metadata, "doi": record.doi}, record.doi, required=complete))
        return errors

    # --- answering ---

    def resource(self, record: Record, query: dict[str, list[str]]) -> dict[str, Any]:
        """The JSON:API document DataCite answers for one DOI."""
        return {
            "data": {
                "id": record.doi,
                "type": "dois",
                "attributes": self._attributes(record, query),
                "relationships": {
                    "client": {"data": {"id": self.client_id, "type": "clients"}},
                    "provider": {"data": {"id": self.client_id.split(".")[0], "type": "providers"}},
                    "media": {"data": []},
                    "references": {"data": []},
                    "citations": {"data": []},
                    "parts": {"data": []},
                    "partOf": {"data": []},
                    "versions": {"data": []},
                    "versionOf": {"data": []},
                },
            }
        }

    def _attributes(self, record: Record, query: dict[str, list[str]]) -> dict[str, Any]:
        metadata = copy.deepcopy(record.metadata)
        affiliation_objects = query.get("affiliation", [""])[0] == "true"
        attributes: dict[str, Any] = {"doi": record.doi, "prefix": record.prefix, "suffix": record.suffix}
        attributes["identifiers"] = [
            {"identifier": item.get("alternateIdentifier"), "identifierType": item.get("alternateIdentifierType")}
            for item in metadata.get("alternateIdentifiers") or []
        ]
        for key in LIST_KEYS:
            attributes[key] = metadata.get(key) or []
        for key in ("creators", "contributors"):
            attributes[key] = [_person(person, affiliation_objects) for person in attributes[key]]
        attributes["publisher"] = _publisher(metadata.get("publisher"), query.get("publisher", [""])[0] == "true")
        attributes["container"] = metadata.get("container") or {}
        attributes["publicationYear"] = _year(metadata.get("publicationYear"))
        attributes["language"] = metadata.get("language")
        attributes["types"] = metadata.get("types") or {}
        attributes["version"] = metadata.get("version")
        attributes.update({
            "url": record.url, "contentUrl": None, "schemaVersion": metadata.get("schemaVersion"), "source": "api",
            "isActive": record.state == FINDABLE, "state": record.state, "reason": None,
            "viewCount": 0, "viewsOverTime": [], "downloadCount": 0, "downloadsOverTime": [], "referenceCount": 0,
            "citationCount": 0, "citationsOverTime": [], "partCount": 0, "partOfCount": 0, "versionCount": 0,
            "versionOfCount": 0, "created": record.created, "registered": record.registered,
            "published": str(metadata.get("publicationYear")) if record.state != DRAFT else None,
            "updated": record.updated,
        })
        return attributes


def schema_errors(instance: dict[str, Any], doi: str, *, required: bool = True) -> list[dict[str, str]]:
    """One JSON:API error per schema violation, its source the top-level attribute it concerns.

    required=False skips the top-level required attributes (a draft may lack them).
    """
    errors = []
    for error in SCHEMA_VALIDATOR.iter_errors(instance):
        if error.path:
            where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.path)
            errors.append(attribute_error(str(error.path[0]), f"{where.lstrip('.')}: {error.message}", doi))
        elif error.validator == "required":
            if not required:
                continue
            # At the top level the missing attribute is in the message: "'titles' is a required property".
            missing = re.match(r"^'(.+)' is a required property$", error.message)
            source = missing.group(1) if missing else "base"
            errors.append(attribute_error(source, "Can't be blank", doi))
        else:
            errors.append(attribute_error("base", error.message, doi))
    return sorted(errors, key=lambda e: (e["source"], e["title"]))


def _person(person: dict[str, Any], affiliation_objects: bool) -> dict[str, Any]:
    person = dict(person)
    affiliations = person.get("affiliation") or []
    person["affiliation"] = affiliations if affiliation_objects else [a.get("name") for a in affiliations]
    person["nameIdentifiers"] = person.get("nameIdentifiers") or []
    return person


def _publisher(publisher: Any, as_object: bool) -> Any:
    if publisher is None:
        return None
    if as_object:
        return publisher if isinstance(publisher, dict) else {"name": publisher}
    return publisher.get("name") if isinstance(publisher, dict) else publisher


def _year(year: Any) -> Any:
    # DataCite keeps the year in an integer column and answers it as a number, whatever the client sent.
    return int(year) if isinstance(year, str) and year.isdigit() else year


# --- the server -----------------------------------------------------------------------------------------------


class FakeDataCite(LoopbackServer):
    """DataCite's REST API on http://127.0.0.1:<port>. Use `with FakeDataCite(...) as server:` or start()/stop().

    Faults and the request log come from LoopbackServer: fail_next, fail_with, hang, lose_next, fail_randomly,
    recover, `requests`. `failure_rate` > 0 starts it failing that share of requests (5xx answers) at random,
    seeded by `failure_seed`."""

    def __init__(
        self,
        *,
        username: str = "NBARCHIVE.TEST",
        password: str = "test-password",
        prefixes: tuple[str, ...] | list[str] = ("10.80000",),
        host: str = "127.0.0.1",
        port: int = 0,
        failure_rate: float = 0.0,
        failure_seed: int = 0,
    ):
        super().__init__(host=host, port=port)
        if failure_rate:
            self.fail_randomly(failure_rate, seed=failure_seed, statuses=(500, 502, 503, 504))
        self.username = username
        self.password = password
        self.prefixes = tuple(prefixes)
        self._registry = Registry(self.prefixes, client_id=username.lower())

    @property
    def url(self) -> str:
        """The API's base URL, without a trailing slash (the client adds one)."""
        return self.base_url

    # --- introspection ---

    def doi(self, name: str) -> dict[str, Any] | None:
        """The stored record (doi, prefix, suffix, state, url, metadata, created, updated, registered), or None."""
        with self._lock:
            record = self._registry.records.get(name.lower())
            return record.as_dict() if record else None

    def state(self, name: str) -> str | None:
        with self._lock:
            record = self._registry.records.get(name.lower())
            return record.state if record else None

    def all_dois(self) -> dict[str, str]:
        """Every stored DOI name with its state, sorted by name."""
        with self._lock:
            return {doi: self._registry.records[doi].state for doi in sorted(self._registry.records)}

    def deleted_dois(self) -> set[str]:
        """Names of deleted drafts (which can never be created again)."""
        with self._lock:
            return set(self._registry.deleted)

    def seed(self, doi: str, *, state: str = DRAFT, url: str | None = None,
             metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """Store a DOI directly (not logged as a request), under the same rules as the API; ValueError if refused."""
        event = {DRAFT: None, REGISTERED: "register", FINDABLE: "publish"}[state]
        attributes = {**copy.deepcopy(metadata or {}), "url": url, "event": event}
        with self._lock:
            answer = self._registry.create(doi, {key: value for key, value in attributes.items() if value is not None})
        if answer.status != 201:
            raise ValueError(f"DataCite would refuse this DOI ({answer.status}): {answer.body}")
        return self.doi(doi)

    def fault_response(self, fault: Fault) -> Response:
        return _response(error_answer(fault.status, headers=fault.headers))

    def answer(self, request: Request, exchange: Exchange) -> Response:
        return _response(self._carry_out(request))

    def _carry_out(self, request: Request) -> Answer:
        """Route one request to the registry: authentication, then the operation."""
        parts = urlsplit(request.path)
        query = parse_qs(parts.query)
        path = unquote(parts.path)
        authenticated = self._authenticate(request.headers.get("authorization"))
        if authenticated is None:
            return error_answer(401, "Bad credentials.")
        if path.rstrip("/") == "/dois":
            return self._collection(request, authenticated)
        if not path.startswith("/dois/"):
            return error_answer(404, "The resource you are looking for doesn't exist.")
        doi = path.removeprefix("/dois/")
        if request.method == "GET":
            with self._lock:
                return self._registry.show(doi, authenticated=authenticated, query=query)
        if not authenticated:
            return error_answer(401, "Bad credentials.")
        if request.method == "DELETE":
            with self._lock:
                return self._registry.delete(doi)
        if request.method == "PUT":
            attributes = _attributes_of(request.body)
            if isinstance(attributes, Answer):
                return attributes
            with self._lock:
                return self._registry.update(doi, attributes)
        return error_answer(405, "Method not allowed")

    def _collection(self, request: Request, authenticated: bool) -> Answer:
        if request.method == "GET":
            return error_answer(501, "Listing DOIs is not implemented by the fake")
        if request.method != "POST":
            return error_answer(405, "Method not allowed")
        if not authenticated:
            return error_answer(401, "Bad credentials.")
        attributes = _attributes_of(request.body)
        if isinstance(attributes, Answer):
            return attributes
        with self._lock:
            return self._registry.create(None, attributes)

    def _authenticate(self, header: str | None) -> bool | None:
        """True for our repository, False for no credentials (a public reader), None for wrong credentials."""
        if not header:
            return False
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            username, _, password = b64decode(encoded, validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        # DataCite repository IDs are case-insensitive; passwords are not.
        if username.lower() == self.username.lower() and secrets.compare_digest(password, self.password):
            return True
        return None


def _attributes_of(body: bytes) -> dict[str, Any] | Answer:
    """The `data.attributes` of a JSON:API payload, or the 400 lupo answers for anything else."""
    try:
        document = json.loads(body or b"null")
    except ValueError:
        document = None
    data = document.get("data") if isinstance(document, dict) else None
    attributes = data.get("attributes", {}) if isinstance(data, dict) else None
    if not isinstance(attributes, dict):
        return error_answer(400, "You need to provide a payload following the JSONAPI spec")
    return attributes


def _response(answer: Answer) -> Response:
    if answer.body is None:
        return Response(answer.status, b"", None, answer.headers)
    return Response(answer.status, json.dumps(answer.body).encode(), JSONAPI_CONTENT_TYPE, answer.headers)
