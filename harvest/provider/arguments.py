"""Checking the arguments of an OAI-PMH request before any verb runs (spec section 3.1 and 4).

`parse_request` turns the request's query (GET) or form body (POST) into a `ProtocolRequest`, or raises
OAIError with `badVerb` (verb missing, repeated or unknown) or `badArgument` (an argument that is illegal for the
verb, repeated, missing, combined with `resumptionToken`, or of illegal syntax). Syntax is checked here, meaning
here: whether a metadata format, set, identifier or token exists is the verb's business.

Syntax rules that go beyond the prose of the spec come from OAI-PMH.xsd, because every value accepted here is
echoed in the response's `request` element and must validate there: metadataPrefix and setSpec patterns, and
`from`/`until` as a date or a UTC dateTime with seconds. `from` and `until` must have the same granularity and
`from` may not be later than `until`.
"""

import datetime
import re
from dataclasses import dataclass

from harvest.provider.protocol import VERBS, OAIError, parse_utc

# verb -> (required arguments, optional arguments); resumptionToken is exclusive wherever it is allowed.
ARGUMENTS = {
    "Identify": (frozenset(), frozenset()),
    "ListMetadataFormats": (frozenset(), frozenset({"identifier"})),
    "ListSets": (frozenset(), frozenset({"resumptionToken"})),
    "GetRecord": (frozenset({"identifier", "metadataPrefix"}), frozenset()),
    "ListIdentifiers": (frozenset({"metadataPrefix"}), frozenset({"from", "until", "set", "resumptionToken"})),
    "ListRecords": (frozenset({"metadataPrefix"}), frozenset({"from", "until", "set", "resumptionToken"})),
}
assert set(ARGUMENTS) == set(VERBS)

METADATA_PREFIX = re.compile(r"[A-Za-z0-9\-_.!~*'()]+")
SET_SPEC = re.compile(r"[A-Za-z0-9\-_.!~*'()]+(:[A-Za-z0-9\-_.!~*'()]+)*")
# anyURI, as libxml2 checks it: no spaces or characters that would need escaping in an XML attribute's URI.
IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]+")
MAX_ARGUMENT_LENGTH = 2000


@dataclass(frozen=True)
class ProtocolRequest:
    verb: str
    arguments: dict[str, str]
    # from/until as the half-open interval [since, before) of datestamps they admit; None when not given.
    since: datetime.datetime | None = None
    before: datetime.datetime | None = None


def parse_request(query) -> ProtocolRequest:
    """`query` is a QueryDict (request.GET or request.POST)."""
    verbs = query.getlist("verb")
    if not verbs:
        raise OAIError("badVerb", "The verb argument is missing.")
    if len(verbs) > 1:
        raise OAIError("badVerb", "The verb argument is repeated.")
    verb = verbs[0]
    if verb not in ARGUMENTS:
        raise OAIError("badVerb", f"'{verb[:100]}' is not an OAI-PMH verb; the verbs are {', '.join(VERBS)}.")

    required, optional = ARGUMENTS[verb]
    arguments = {}
    for name, values in query.lists():
        if name == "verb":
            continue
        if name not in required | optional:
            raise OAIError("badArgument", f"{verb} does not take the argument '{name[:100]}'.")
        if len(values) > 1:
            raise OAIError("badArgument", f"The argument '{name}' is repeated.")
        if not values[0] or len(values[0]) > MAX_ARGUMENT_LENGTH:
            raise OAIError("badArgument", f"The argument '{name}' is empty or too long.")
        arguments[name] = values[0]

    if "resumptionToken" in arguments:
        if len(arguments) > 1:
            raise OAIError("badArgument", "resumptionToken is an exclusive argument: send it with the verb only.")
        return ProtocolRequest(verb, arguments)
    missing = sorted(required - arguments.keys())
    if missing:
        raise OAIError("badArgument", f"{verb} requires the argument{'s' if len(missing) > 1 else ''} "
                                      f"{', '.join(missing)}.")
    return _checked(verb, arguments)


def parse_interval(from_: str | None, until: str | None) -> tuple[datetime.datetime | None, datetime.datetime | None]:
    """[since, before) for `from` and `until`; raises badArgument. Also used on the values a token carries."""
    since = before = None
    parsed_from = parsed_until = None
    if from_ is not None:
        parsed_from = parse_utc(from_)
        if parsed_from is None:
            raise OAIError("badArgument", f"from='{from_[:100]}' is not a date (YYYY-MM-DD) or a UTC time "
                                          "(YYYY-MM-DDThh:mm:ssZ).")
        since = parsed_from[0]
    if until is not None:
        parsed_until = parse_utc(until)
        if parsed_until is None:
            raise OAIError("badArgument", f"until='{until[:100]}' is not a date (YYYY-MM-DD) or a UTC time "
                                          "(YYYY-MM-DDThh:mm:ssZ).")
        # Datestamps are shown to the second (or the day), so `until` includes the whole second (or day).
        try:
            before = parsed_until[0] + parsed_until[1]
        except OverflowError:  # until=9999-12-31: the last day there is, so no upper bound at all
            before = None
    if parsed_from and parsed_until:
        if parsed_from[1] != parsed_until[1]:
            raise OAIError("badArgument", "from and until must have the same granularity.")
        if parsed_from[0] > parsed_until[0]:
            raise OAIError("badArgument", "from is later than until.")
    return since, before


def _checked(verb: str, arguments: dict[str, str]) -> ProtocolRequest:
    prefix = arguments.get("metadataPrefix")
    if prefix is not None and not METADATA_PREFIX.fullmatch(prefix):
        raise OAIError("badArgument", "metadataPrefix has characters a metadata prefix cannot have.")
    set_spec = arguments.get("set")
    if set_spec is not None and not SET_SPEC.fullmatch(set_spec):
        raise OAIError("badArgument", "set is not a setSpec (e.g. community:materials).")
    identifier = arguments.get("identifier")
    if identifier is not None and not IDENTIFIER.fullmatch(identifier):
        raise OAIError("badArgument", "identifier is not a URI (e.g. oai:archive.example.org:abcde-12345/v1).")
    since, before = parse_interval(arguments.get("from"), arguments.get("until"))
    return ProtocolRequest(verb, arguments, since, before)
