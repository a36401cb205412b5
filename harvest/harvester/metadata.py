"""Reading the metadata of harvested records: `oai_dc` and DataCite (`oai_datacite`) XML to `RecordMetadata`.

Remote XML is untrusted. `parse_untrusted_xml` never reads the network or the file system, never expands entities
(so neither XXE nor "billion laughs" work), keeps lxml's limits on depth and text size, and refuses documents that
are not well-formed instead of guessing (no `recover`).

`parse_metadata(prefix, xml)` raises `MetadataUnreadable` (a ValueError) for XML that is broken or not of the
expected format; a record without a title, creators or DOI is still readable: those are left empty.
"""

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from lxml import etree

DC_NAMESPACE = "http://purl.org/dc/elements/1.1/"
DATACITE_NAMESPACE_PREFIX = "http://datacite.org/schema/kernel-"

# Enough for any real title or name; a source sending more is not telling us anything useful with it.
MAX_TEXT = 2000
MAX_CREATORS = 1000
MAX_IDENTIFIERS = 100

# DOI syntax as DataCite and Crossref accept it: "10." + registrant code + "/" + any suffix.
_BARE_DOI = re.compile(r"10\.\d{4,9}/\S+")
_DOI_FORMS = (
    re.compile(r"^https?://(?:dx\.)?doi\.org/(10\..+)$", re.IGNORECASE),
    re.compile(r"^doi:\s*(10\..+)$", re.IGNORECASE),
    re.compile(r"^info:doi/(10\..+)$", re.IGNORECASE),
    re.compile(r"^(10\..+)$"),
)
_YEAR = re.compile(r"^(\d{4})(?:$|[-/T ])")
_SPACE = re.compile(r"\s+")


class MetadataUnreadable(ValueError):
    pass


@dataclass(frozen=True)
class RecordMetadata:
    title: str = ""
    creators: list[str] = field(default_factory=list)
    doi: str = ""  # lower case, bare (10.x/...)
    identifiers: list[str] = field(default_factory=list)  # all others, as given
    publication_year: int | None = None
    resource_type: str = ""


def parse_untrusted_xml(data: bytes) -> etree._Element:
    """The root element of `data`; raises MetadataUnreadable when it is not well-formed XML."""
    # A parser per call: lxml parsers must not be shared between threads.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                             huge_tree=False, recover=False, remove_comments=True, remove_pis=True)
    try:
        root = etree.fromstring(data, parser=parser)
    except etree.XMLSyntaxError as exc:
        raise MetadataUnreadable(f"not well-formed XML ({exc})") from exc
    if root is None:
        raise MetadataUnreadable("empty document")
    return root


def doi_from_identifier(value: str) -> str:
    """The DOI that `value` names, lower case and bare, or '' when it names none.

    Understands https://doi.org/10..., http://dx.doi.org/10..., doi:10..., info:doi/10... and a bare 10.xxxx/....
    """
    value = value.strip()
    for form in _DOI_FORMS:
        if match := form.match(value):
            doi = unquote(match.group(1)) if value.lower().startswith("http") else match.group(1)
            doi = doi.strip()
            return doi.lower() if _BARE_DOI.fullmatch(doi) else ""
    return ""


def parse_metadata(prefix: str, data: bytes) -> RecordMetadata:
    root = parse_untrusted_xml(data)
    if prefix == "oai_datacite":
        return datacite_metadata(root)
    return dublin_core_metadata(root)


def dublin_core_metadata(root: etree._Element) -> RecordMetadata:
    """oai_dc: the first dc:title, every dc:creator, dc:identifier (the first DOI found is *the* DOI), the year of
    the first dc:date that has one, and the first dc:type that is not an info:eu-repo URI (else the first)."""
    if etree.QName(root).localname != "dc":
        raise MetadataUnreadable(f"expected oai_dc:dc, found <{etree.QName(root).localname}>")

    def values(name: str) -> list[str]:
        return [text for element in root.iter(f"{{{DC_NAMESPACE}}}{name}") if (text := _text(element))]

    doi, identifiers = _split_identifiers(values("identifier"))
    types = values("type")
    return RecordMetadata(
        title=next(iter(values("title")), ""),
        creators=values("creator")[:MAX_CREATORS],
        doi=doi,
        identifiers=identifiers,
        publication_year=next((year for date in values("date") if (year := _year(date))), None),
        resource_type=next((t for t in types if not t.startswith("info:eu-repo/")), next(iter(types), ""))[:200],
    )


def datacite_metadata(root: etree._Element) -> RecordMetadata:
    """DataCite XML (kernel-3 or -4): the `<resource>` directly in `<metadata>`, or wrapped in an envelope such
    as OpenAIRE's `<oai_datacite><payload>`."""
    resource = _datacite_resource(root)
    if resource is None:
        raise MetadataUnreadable("no DataCite <resource> element")
    ns = etree.QName(resource).namespace

    def find_all(path: str) -> list[etree._Element]:
        return resource.findall("/".join(f"{{{ns}}}{step}" for step in path.split("/")))

    titles = find_all("titles/title")
    main_titles = [t for t in titles if not t.get("titleType")] or titles
    doi = ""
    identifiers = []
    for element in find_all("identifier") + find_all("alternateIdentifiers/alternateIdentifier"):
        text = _text(element)
        kind = (element.get("identifierType") or element.get("alternateIdentifierType") or "").upper()
        found = doi_from_identifier(text) if kind in ("DOI", "") else ""
        if not found:
            if text:
                identifiers.append(text)
        elif not doi:
            doi = found
        elif found != doi:
            identifiers.append(text)
    resource_type = next(iter(find_all("resourceType")), None)
    return RecordMetadata(
        title=next((text for t in main_titles if (text := _text(t))), ""),
        creators=[name for c in find_all("creators/creator") if (name := _datacite_creator_name(c, ns))][
            :MAX_CREATORS],
        doi=doi,
        identifiers=identifiers[:MAX_IDENTIFIERS],
        publication_year=next((_year(_text(y)) for y in find_all("publicationYear")), None),
        resource_type=(resource_type.get("resourceTypeGeneral") or _text(resource_type))[:200]
        if resource_type is not None else "",
    )


def _datacite_resource(root: etree._Element) -> etree._Element | None:
    for element in root.iter(etree.Element):
        qname = etree.QName(element)
        if qname.localname == "resource" and (qname.namespace or "").startswith(DATACITE_NAMESPACE_PREFIX):
            return element
    return None


def _datacite_creator_name(creator: etree._Element, ns: str) -> str:
    name = _text(creator.find(f"{{{ns}}}creatorName"))
    if name:
        return name
    family, given = _text(creator.find(f"{{{ns}}}familyName")), _text(creator.find(f"{{{ns}}}givenName"))
    return ", ".join(part for part in (family, given) if part)


def _split_identifiers(values: list[str]) -> tuple[str, list[str]]:
    doi = ""
    others = []
    for value in values:
        found = doi_from_identifier(value)
        if not found:
            others.append(value)
        elif not doi:
            doi = found
        elif found != doi:  # another DOI (e.g. of a part or a version); the same one in another form is dropped
            others.append(value)
    return doi, others[:MAX_IDENTIFIERS]


def _text(element: etree._Element | None) -> str:
    if element is None:
        return ""
    return _SPACE.sub(" ", "".join(element.itertext())).strip()[:MAX_TEXT]


def _year(value: str) -> int | None:
    match = _YEAR.match(value.strip())
    return int(match.group(1)) if match and 1000 <= int(match.group(1)) <= 9999 else None
