"""BibTeX entries, shaped like Zenodo's: @software for notebooks, @dataset for datasets.

biblatex, JabRef, Zotero and Mendeley read both types; classic BibTeX styles that do not know them fall back
to @misc (with a warning), so nothing is lost. Text is UTF-8 with LaTeX's special characters escaped.
"""

import re
import unicodedata

from django.conf import settings

from repository.exports import creator_name, doi_url, publication_date, version_label, version_landing_url
from repository.models import ResourceType, Version

ENTRY_TYPES = {ResourceType.NOTEBOOK: "software", ResourceType.DATASET: "dataset"}
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
LATEX_SPECIALS = {
    "\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
    "_": r"\_", "^": r"\^{}", "~": r"\~{}",
}
_LATEX_SPECIALS_RE = re.compile("|".join(re.escape(char) for char in LATEX_SPECIALS))


def version_bibtex(version: Version) -> str:
    """One BibTeX entry for `version`, ending with a newline."""
    issued = publication_date(version)
    fields = [
        ("author", " and ".join(_author(creator) for creator in version.creators.all())),
        ("title", latex_escape(version.title)),
        ("month", MONTHS[issued.month - 1]),  # a BibTeX macro, so written without braces
        ("year", str(issued.year)),
        ("publisher", latex_escape(settings.DOI_PUBLISHER)),
        ("version", latex_escape(version_label(version))),
        ("doi", _verbatim(version.doi)),
        ("url", _verbatim(doi_url(version.doi) if version.doi else version_landing_url(version))),
        ("keywords", latex_escape(", ".join(version.keywords))),
    ]
    lines = [f"@{ENTRY_TYPES.get(version.resource_type, 'misc')}{{{citation_key(version)},"]
    for name, value in fields:
        if value:
            written = value if name in ("month", "year") else f"{{{value}}}"
            lines.append(f"  {name:<9} = {written},")
    return "\n".join(lines) + "\n}\n"


def citation_key(version: Version) -> str:
    """First author, year and our ids: readable, unique, and the same every time the version is exported."""
    creators = list(version.creators.all())
    author = ""
    if creators:
        name = creator_name(creators[0])
        author = name.family if name.is_person and name.family else name.display.split(" ")[0]
    ascii_author = unicodedata.normalize("NFKD", author).encode("ascii", "ignore").decode()
    author_part = re.sub(r"[^a-z0-9]", "", ascii_author.lower()) or "nbarchive"
    return f"{author_part}_{publication_date(version).year}_{version.record.public_id}_v{version.number}"


def latex_escape(text: str) -> str:
    """Escape the characters LaTeX treats specially; braces come out balanced whatever the input."""
    return _LATEX_SPECIALS_RE.sub(lambda match: LATEX_SPECIALS[match.group()], text)


def _author(creator) -> str:
    name = creator_name(creator)
    if name.family:
        parts = [_protect_and(latex_escape(name.family))]
        if name.given:
            parts.append(_protect_and(latex_escape(name.given)))
        return ", ".join(parts)
    # Braces keep an organisation's name (or an unsplit person's) whole: BibTeX would otherwise take its last
    # word as a family name, and "and" in it as a separator between authors.
    return f"{{{latex_escape(name.display)}}}"


def _protect_and(part: str) -> str:
    return f"{{{part}}}" if re.search(r"\band\b", part, re.IGNORECASE) else part


def _verbatim(value: str) -> str:
    # doi and url are read verbatim by biblatex and the url package; only braces and backslashes would break the
    # entry, and they cannot be part of a URL unencoded anyway.
    return value.replace("\\", "%5C").replace("{", "%7B").replace("}", "%7D")
