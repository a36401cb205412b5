"""The HTML allowlist, applied by nh3 twice: to every HTML or Markdown value where nbconvert would sanitise it,
and to the whole rendered body once more (the last parser decides)."""

import re

import nh3

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "col", "colgroup", "dd", "del", "details",
    "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img",
    "ins", "kbd", "li", "main", "mark", "ol", "p", "pre", "q", "s", "samp", "small", "span", "strong", "sub",
    "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul", "var",
}
# Removed together with everything inside them (other unknown tags are removed but keep their text).
REMOVED_WITH_CONTENT = {
    "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "noscript", "noembed",
    "noframes", "template", "svg", "math", "textarea", "select", "option", "title", "head", "xmp", "plaintext",
}
ALLOWED_ATTRIBUTES = {
    "*": {"class", "id", "title", "lang", "dir"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align", "scope"},
    "ol": {"start", "type"},
    "col": {"span"},
    "colgroup": {"span"},
}
# data: is a scheme nh3 lets through only so that `_attribute_filter` can keep image data URLs in img src.
URL_SCHEMES = {"http", "https", "mailto", "data"}
IMAGE_DATA_URL = re.compile(r"data:image/(?:png|jpeg|gif|webp|svg\+xml);base64,[A-Za-z0-9+/]*={0,2}")
SMALL_NUMBER = re.compile(r"[0-9]{1,5}")
MAX_DIMENSION = 10000


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    if attribute == "src":
        # Only pictures carried inside the page itself; the CSP (img-src data:) would block anything else anyway.
        return value if tag == "img" and IMAGE_DATA_URL.fullmatch(value) else None
    if attribute == "href":
        return None if value.strip().lower().startswith("data:") else value
    if attribute in {"width", "height", "colspan", "rowspan", "span", "start"}:
        return value if SMALL_NUMBER.fullmatch(value) and 0 < int(value) <= MAX_DIMENSION else None
    return value


def _relative_url(url: str) -> str | None:
    # In-page anchors (headings' ¶ links) only: a relative link would point into the application.
    return url if url.startswith("#") else None


def sanitize_fragment(fragment) -> str:
    """Sanitise an HTML fragment with the allowlist above (no script, no styles, no forms, no frames)."""
    if isinstance(fragment, bytes):
        fragment = fragment.decode("utf-8", errors="replace")
    return nh3.clean(
        str(fragment), tags=ALLOWED_TAGS, clean_content_tags=REMOVED_WITH_CONTENT, attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=_attribute_filter, url_schemes=URL_SCHEMES, url_relative=_relative_url,
        link_rel="noopener noreferrer nofollow", strip_comments=True,
    )
