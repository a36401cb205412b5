"""Writing the XML of a response: the OAI-PMH envelope, headers, records and resumption tokens.

Responses are written as text, with every value escaped (`xml_escape`), rather than built as a DOM: a page of a
hundred records is a few thousand elements, and text is several times faster to produce. The namespaces are
declared once, on the root (OAI-PMH as the default namespace) and on each payload's root element; the tests
validate every kind of response against the official schemas.
"""

import functools
from collections.abc import Iterable
from types import SimpleNamespace

from django.conf import settings
from django.urls import reverse

from harvest.provider.protocol import (
    OAI_NAMESPACE,
    OAI_SCHEMA,
    XSI_NAMESPACE,
    OAIError,
    datestamp,
    now,
    oai_identifier,
)
from harvest.provider.sets import version_set_specs
from repository.exports.dublincore import xml_escape

_DECLARATION = "<?xml version='1.0' encoding='UTF-8'?>\n"
_ROOT_OPEN = (f'<OAI-PMH xmlns="{OAI_NAMESPACE}" xmlns:xsi="{XSI_NAMESPACE}" '
              f'xsi:schemaLocation="{OAI_NAMESPACE} {OAI_SCHEMA}">')


def base_url() -> str:
    return f"{settings.SITE_URL}{reverse('harvest:oai')}"


def element(name: str, text: str = "", attributes: dict[str, str] | None = None) -> str:
    """`<name attributes>text</name>`, with the text and the attribute values escaped."""
    return f"<{name}{_attributes(attributes)}>{xml_escape(text)}</{name}>"


def container(name: str, children: Iterable[str], attributes: dict[str, str] | None = None) -> str:
    """`<name attributes>children</name>`; the children are XML already."""
    return f"<{name}{_attributes(attributes)}>{''.join(children)}</{name}>"


def response_document(*, arguments: dict[str, str] | None, content: str | list[OAIError]) -> bytes:
    """The whole response: responseDate, the request element, and the verb's element (XML) or the errors.

    `arguments` (verb included) are echoed as attributes of `request`; None leaves them out, as the spec asks
    after badVerb and badArgument.
    """
    if isinstance(content, list):
        content = "".join(element("error", error.message, {"code": error.code}) for error in content)
    return "".join((_DECLARATION, _ROOT_OPEN, element("responseDate", datestamp(now())),
                    element("request", base_url(), arguments), content, "</OAI-PMH>")).encode()


def record(item) -> str:
    """A record: its header, and its metadata (the stored payload) unless it is deleted (a withdrawn version has
    none)."""
    return _record(item, _identifier_prefix())


def headers(items) -> str:
    """The headers of a page, one after the other."""
    prefix = _identifier_prefix()
    return "".join([_header(item, prefix) for item in items])


def records(items) -> str:
    """The records of a page, one after the other: a concatenation of the stored payloads with their headers."""
    prefix = _identifier_prefix()
    return "".join([_record(item, prefix) for item in items])


def _identifier_prefix() -> str:
    """`oai:<namespace>:`, escaped: what every identifier of a response starts with."""
    return xml_escape(oai_identifier("", 0)[:-len("/v0")])


def _header(item, identifier_prefix: str) -> str:
    # A record's public id is five and five of [0-9a-z] (records.new_public_id), written by the application only,
    # and the number an int: they need no escaping, which saves a third of a header's time. Set specs are escaped
    # (a slug is validated by forms, not by the database).
    status = ' status="deleted"' if item.deleted else ""
    set_specs = _set_specs(tuple(item.oai_communities), item.resource_type)
    return (f"<header{status}><identifier>{identifier_prefix}{item.public_id}/v{item.number}</identifier>"
            f"<datestamp>{item.datestamp}</datestamp>{set_specs}</header>")


@functools.lru_cache(maxsize=4096)
def _set_specs(communities: tuple[str, ...], resource_type: str) -> str:
    """The setSpec elements of a header; a few distinct combinations make every header of a page."""
    return "".join(f"<setSpec>{xml_escape(spec)}</setSpec>"
                   for spec in version_set_specs(SimpleNamespace(oai_communities=communities,
                                                                 resource_type=resource_type)))


def _record(item, identifier_prefix: str) -> str:
    if item.deleted:
        return f"<record>{_header(item, identifier_prefix)}</record>"
    return f"<record>{_header(item, identifier_prefix)}<metadata>{item.metadata}</metadata></record>"


def resumption_token(value: str, *, cursor: int, complete_list_size: int, expiration=None) -> str:
    attributes = {"cursor": str(cursor), "completeListSize": str(complete_list_size)}
    if expiration is not None:
        attributes["expirationDate"] = datestamp(expiration)
    return element("resumptionToken", value, attributes)


def _attributes(attributes: dict[str, str] | None) -> str:
    if not attributes:
        return ""
    return "".join(f' {name}="{xml_escape(value)}"' for name, value in attributes.items())
