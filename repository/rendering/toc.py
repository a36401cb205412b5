"""The table of contents of a rendered notebook: its headings, read back from the sanitised page.

Read from the page rather than the notebook so that every entry points at an `id` the rendered document really
has (nbconvert derives them from the heading text), and so that nothing the sanitiser removed reappears: an
entry's text is plain text, to be escaped by the template that shows it.
"""

from dataclasses import dataclass
from html.parser import HTMLParser

HEADING_TAGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
MAX_ENTRIES = 200  # a notebook of thousands of headings gets the first ones; the page itself has them all
MAX_TEXT = 200


@dataclass(frozen=True)
class Heading:
    level: int
    anchor: str
    text: str


class _HeadingParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.headings: list[Heading] = []
        self._current: tuple[int, str] | None = None
        self._text: list[str] = []
        self._in_anchor_link = 0

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag in HEADING_TAGS and attributes.get("id"):
            self._current, self._text = (HEADING_TAGS[tag], attributes["id"]), []
        elif tag == "a" and "anchor-link" in (attributes.get("class") or "").split():
            self._in_anchor_link += 1  # the "¶" nbconvert appends to each heading

    def handle_endtag(self, tag):
        if tag == "a" and self._in_anchor_link:
            self._in_anchor_link -= 1
        elif tag in HEADING_TAGS and self._current is not None:
            text = " ".join("".join(self._text).split())[:MAX_TEXT]
            if text and len(self.headings) < MAX_ENTRIES:
                self.headings.append(Heading(self._current[0], self._current[1], text))
            self._current = None

    def handle_data(self, data):
        if self._current is not None and not self._in_anchor_link:
            self._text.append(data)


def headings(page_html: str) -> list[Heading]:
    """The headings of a rendered notebook page, in document order, each with the id it can be linked by."""
    parser = _HeadingParser()
    parser.feed(page_html)
    parser.close()
    return parser.headings
