"""The six OAI-PMH verbs. `respond` takes the request's arguments and returns the response document (bytes).

Each verb returns its element (as XML text, see document.py) or raises OAIError; errors are answered in the same
envelope, with the request's arguments echoed unless they were the problem (badVerb, badArgument). Which error when:

- badVerb, badArgument: arguments/syntax (arguments.py); also `from`/`until` re-checked from a token;
- badResumptionToken: a token that is forged, expired, for another verb, or sent to ListSets (which never pages);
- cannotDisseminateFormat: an unknown metadataPrefix, or GetRecord in a format the item cannot have
  (oai_datacite for a version without DOI);
- idDoesNotExist: an identifier that is not one of our items (wrong namespace, unknown record or version, a
  version that was never accepted);
- noRecordsMatch: a list with no item (empty interval, unknown or empty set, nothing in that format);
- noMetadataFormats: ListMetadataFormats for an item no format can describe. Every item has oai_dc, so this is
  answered only if the formats are ever configured so that some item has none;
- noSetHierarchy: never; the repository has sets.
"""

from django.conf import settings

from harvest.provider.arguments import ProtocolRequest, parse_interval, parse_request
from harvest.provider.document import (
    base_url,
    container,
    element,
    headers,
    record,
    records,
    response_document,
    resumption_token,
)
from harvest.provider.formats import FORMATS, MetadataFormat, formats_for
from harvest.provider.items import (
    earliest_datestamp,
    item_get,
    item_read,
    items_estimate,
    items_page,
    items_selection,
)
from harvest.provider.protocol import (
    GRANULARITY,
    OAI_IDENTIFIER_NAMESPACE,
    OAI_IDENTIFIER_SCHEMA,
    OAIError,
    datestamp,
    identifier_namespace,
    namespace_follows_oai_identifier_scheme,
    now,
    parse_oai_identifier,
)
from harvest.provider.sets import set_filter, sets_list
from harvest.provider.tokens import ResumptionToken, expiration_date, token_decode, token_encode
from repository.models import Version


def respond(query) -> bytes:
    """The response document for a request whose arguments are `query` (request.GET or request.POST)."""
    try:
        request = parse_request(query)
    except OAIError as error:
        return response_document(arguments=None, content=[error])
    arguments = {"verb": request.verb, **request.arguments}
    try:
        content = VERBS[request.verb](request)
    except OAIError as error:
        return response_document(arguments=arguments if error.echoes_arguments else None, content=[error])
    return response_document(arguments=arguments, content=content)


def identify(request: ProtocolRequest) -> str:
    earliest = earliest_datestamp()
    parts = [
        element("repositoryName", settings.OAI_REPOSITORY_NAME),
        element("baseURL", base_url()),
        element("protocolVersion", "2.0"),
        *(element("adminEmail", email) for email in settings.OAI_ADMIN_EMAIL),
        # Any lower bound will do while there is no item; now is the tightest true one.
        element("earliestDatestamp", datestamp(earliest or now())),
        element("deletedRecord", "persistent"),
        element("granularity", GRANULARITY),
    ]
    namespace = identifier_namespace()
    if namespace_follows_oai_identifier_scheme(namespace):
        scheme = container("oai-identifier", (
            element("scheme", "oai"), element("repositoryIdentifier", namespace), element("delimiter", ":"),
            element("sampleIdentifier", f"oai:{namespace}:abcde-12345/v1"),
        ), {"xmlns": OAI_IDENTIFIER_NAMESPACE,
            "xsi:schemaLocation": f"{OAI_IDENTIFIER_NAMESPACE} {OAI_IDENTIFIER_SCHEMA}"})
        parts.append(container("description", [scheme]))
    return container("Identify", parts)


def list_metadata_formats(request: ProtocolRequest) -> str:
    if "identifier" in request.arguments:
        available = formats_for(_item(request.arguments["identifier"]))
        if not available:
            raise OAIError("noMetadataFormats", "There are no metadata formats for this item.")
    else:
        available = list(FORMATS.values())
    return container("ListMetadataFormats", (
        container("metadataFormat", (element("metadataPrefix", f.prefix), element("schema", f.schema),
                                     element("metadataNamespace", f.namespace)))
        for f in available))


def list_sets(request: ProtocolRequest) -> str:
    if "resumptionToken" in request.arguments:
        raise OAIError("badResumptionToken", "ListSets is answered in one response; it issues no resumptionToken.")
    return container("ListSets", (container("set", (element("setSpec", spec), element("setName", name)))
                                  for spec, name in sets_list()))


def get_record(request: ProtocolRequest) -> str:
    metadata_format = _format(request.arguments["metadataPrefix"])
    version = _item(request.arguments["identifier"])
    if not metadata_format.describes(version):
        raise OAIError("cannotDisseminateFormat",
                       f"This item is not available as {metadata_format.prefix} (it has no DOI yet).")
    return container("GetRecord", [record(item_read(version, metadata_format))])


def list_identifiers(request: ProtocolRequest) -> str:
    return _list(request, with_metadata=False)


def list_records(request: ProtocolRequest) -> str:
    return _list(request, with_metadata=True)


VERBS = {"Identify": identify, "ListMetadataFormats": list_metadata_formats, "ListSets": list_sets,
         "GetRecord": get_record, "ListIdentifiers": list_identifiers, "ListRecords": list_records}


def _list(request: ProtocolRequest, *, with_metadata: bool) -> str:
    """One page of ListRecords or ListIdentifiers, first or resumed (see harvest/provider/__init__.py)."""
    token_value = request.arguments.get("resumptionToken")
    if token_value is not None:
        token = token_decode(token_value, verb=request.verb)
        prefix, set_spec, from_, until = token.metadata_prefix, token.set_spec, token.from_, token.until
        since, before = parse_interval(from_, until)
        after, cursor, estimate = (token.after_datestamp, token.after_id), token.cursor, token.complete_list_size
    else:
        prefix, set_spec = request.arguments["metadataPrefix"], request.arguments.get("set")
        from_, until = request.arguments.get("from"), request.arguments.get("until")
        since, before = request.since, request.before
        after, cursor, estimate = None, 0, None

    metadata_format = _format(prefix)
    items_filter = None
    if set_spec is not None:
        items_filter = set_filter(set_spec)
        if items_filter is None:
            raise OAIError("noRecordsMatch", f"There is no set '{set_spec}' (ListSets names them).")
    selection_arguments = {"metadata_format": metadata_format, "set_filter": items_filter, "since": since,
                           "before": before}
    selection = items_selection(**selection_arguments)
    page, more = items_page(selection, after=after, size=settings.OAI_PAGE_SIZE,
                            metadata_format=metadata_format if with_metadata else None)
    if not page:
        raise OAIError("noRecordsMatch", "No item matches these arguments." if token_value is None else
                       "The items that were left in this list are gone.")

    parts = [records(page) if with_metadata else headers(page)]
    sent = cursor + len(page)
    if more:
        # Counted once, on the first page, and carried in the token: an estimate, as the spec allows, since items
        # changed during the harvest come again. Counting on every page would cost more than the page itself.
        estimate = max(estimate if estimate is not None else items_estimate(**selection_arguments), sent + 1)
        last = page[-1]
        token = ResumptionToken(request.verb, prefix, set_spec, from_, until, last.public_changed_at, last.pk,
                                sent, estimate)
        parts.append(resumption_token(token_encode(token), cursor=cursor, complete_list_size=estimate,
                                      expiration=expiration_date()))
    elif token_value is not None:
        # The last page of a list that took several: an empty token, and the size of what was actually sent.
        parts.append(resumption_token("", cursor=cursor, complete_list_size=sent))
    return container(request.verb, parts)


def _format(prefix: str) -> MetadataFormat:
    metadata_format = FORMATS.get(prefix)
    if metadata_format is None:
        raise OAIError("cannotDisseminateFormat",
                       f"'{prefix}' is not a metadata format of this repository; they are {', '.join(FORMATS)}.")
    return metadata_format


def _item(identifier: str) -> Version:
    parsed = parse_oai_identifier(identifier)
    version = item_get(*parsed) if parsed is not None else None
    if version is None:
        raise OAIError("idDoesNotExist", f"There is no item '{identifier[:200]}' in this repository.")
    return version
