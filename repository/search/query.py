"""The query language of the search box, read into terms any backend can compile.

Syntax, as in Zenodo and most search boxes: words (all must match), `"an exact phrase"`, `a OR b`, `-excluded`,
and `field:value` / `field:"a phrase"` for the fields `title`, `creator`, `orcid`, `keyword` and `doi`. A DOI or
an ORCID iD typed alone (also as a https://doi.org/ or https://orcid.org/ link) is read as `doi:` or `orcid:`.

Read leniently where the intent is clear (an unbalanced quote closes at the end, a dangling OR is dropped,
punctuation alone is ignored); refused with InvalidInput where it is not (an unknown field, an ORCID iD that is
not one, a query too long to be a question).
"""

import re
from dataclasses import dataclass

from repository.errors import InvalidInput

FIELDS = ("title", "creator", "orcid", "keyword", "doi")
MAX_QUERY_LENGTH = 1000
MAX_TERMS = 30

_DOI = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:)?(10\.\d{4,9}/\S+)$", re.IGNORECASE)
_ORCID = re.compile(r"^(?:https?://orcid\.org/)?(\d{4}-\d{4}-\d{4}-\d{3}[\dX])/?$", re.IGNORECASE)
# -field:"a phrase", -field:word, "a phrase", word; `field:` only where a name is followed by a colon that does
# not start a URL's "://".
_TOKEN = re.compile(r'(-?)(?:([A-Za-z_]+):(?!//))?(?:"([^"]*)(?:"|$)|(\S+))')
_HAS_WORD = re.compile(r"\w")


@dataclass(frozen=True)
class Term:
    text: str
    field: str | None = None  # None: anywhere in the text
    phrase: bool = False
    negated: bool = False

    @property
    def is_text(self) -> bool:
        """Matched by the full-text index (as opposed to an exact identifier or keyword)."""
        return self.field in (None, "title", "creator")


@dataclass(frozen=True)
class ParsedQuery:
    # All groups must match; a group matches when one of its terms does (terms joined by OR).
    groups: tuple[tuple[Term, ...], ...]

    @property
    def is_empty(self) -> bool:
        return not self.groups

    @property
    def ranking_terms(self) -> list[Term]:
        return [t for group in self.groups for t in group if t.is_text and not t.negated]

    @property
    def names_a_doi(self) -> bool:
        """A DOI names one version; it is found even when it is not its record's latest."""
        return any(t.field == "doi" and not t.negated for group in self.groups for t in group)


def normalise_doi(value: str) -> str:
    match = _DOI.match(value.strip())
    return (match.group(1) if match else value.strip()).lower()


def normalise_orcid(value: str) -> str | None:
    match = _ORCID.match(value.strip())
    return match.group(1).upper() if match else None


def parse_query(q: str) -> ParsedQuery:
    q = (q or "").strip()
    if len(q) > MAX_QUERY_LENGTH:
        raise InvalidInput("The query is too long.", field_errors={"q": [f"At most {MAX_QUERY_LENGTH} characters."]})
    if not q:
        return ParsedQuery(groups=())
    if _DOI.match(q):
        return ParsedQuery(groups=((Term(normalise_doi(q), field="doi"),),))
    if orcid := normalise_orcid(q):
        return ParsedQuery(groups=((Term(orcid, field="orcid"),),))

    groups: list[list[Term]] = []
    join_next = False
    for match in _TOKEN.finditer(q):
        negated, field, phrase, word = match.group(1) == "-", match.group(2), match.group(3), match.group(4)
        if word == "OR" and not negated and not field:
            join_next = bool(groups) and not groups[-1][-1].negated
            continue
        term = _term(field, phrase, word, negated)
        if term is None:
            continue
        if join_next and not term.negated:
            groups[-1].append(term)
        else:
            groups.append([term])
        join_next = False
    if sum(len(g) for g in groups) > MAX_TERMS:
        raise InvalidInput("The query has too many terms.", field_errors={"q": [f"At most {MAX_TERMS} terms."]})
    return ParsedQuery(groups=tuple(tuple(g) for g in groups))


def _term(field: str | None, phrase: str | None, word: str | None, negated: bool) -> Term | None:
    text = (phrase if phrase is not None else word or "").strip()
    if field is not None:
        field = field.lower()
        if field not in FIELDS:
            raise InvalidInput(f"Unknown field '{field}' in the query.",
                               field_errors={"q": [f"Unknown field '{field}'; fields are {', '.join(FIELDS)}."]})
        if not text:
            return None
        if field == "doi":
            return Term(normalise_doi(text), field="doi", negated=negated)
        if field == "orcid":
            orcid = normalise_orcid(text)
            if orcid is None:
                raise InvalidInput(f"'{text}' is not an ORCID iD.",
                                   field_errors={"q": ["orcid: expects an iD like 0000-0002-1825-0097."]})
            return Term(orcid, field="orcid", negated=negated)
        if field == "keyword":
            return Term(text.lower(), field="keyword", negated=negated)
    if not _HAS_WORD.search(text):
        return None  # punctuation alone: nothing to look for
    return Term(text, field=field, phrase=phrase is not None, negated=negated)
