"""JSON from untrusted input, with its nesting depth bounded before it is parsed.

Python's json parser recurses once per level of nesting: a body of 100,000 `[` (200 KB, under any size limit)
raises RecursionError, which nothing treats as bad input, and values nested a few hundred levels deep that do
parse make every later walk over them (serializers, validation, rendering) recurse as deeply. So the depth is
measured first, without recursion and without parsing, and anything deeper than MAX_JSON_DEPTH is refused as
invalid JSON. Every JSON document that comes from a request goes through `json_loads_bounded`: the API's parser
(`BoundedJSONParser`, DRF's DEFAULT_PARSER_CLASSES) and the JSON fields of the web forms.
"""

import json
import re

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils import json as drf_json

# Our deepest document is a draft's metadata with an archive query inside a data reference (about 6 levels);
# archive queries themselves are a few levels deep. 64 leaves room for any honest document.
MAX_JSON_DEPTH = 64

# A JSON string (escapes included), to be skipped: brackets inside strings are not nesting. The closing quote is
# optional so that an unterminated string ends the scan in one pass: required, every later quote would start a new
# attempt to the end of the text (quadratic time on '"' followed by many escaped quotes).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]+")


class JSONTooDeep(ValueError):
    """The document nests arrays and objects deeper than MAX_JSON_DEPTH (a ValueError, as json's own errors)."""


def json_depth_check(text: str, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise JSONTooDeep if `text` opens more than `max_depth` arrays/objects inside each other.

    Runs of brackets are looked at, not single characters, so a long document costs a few regex scans.
    Malformed text is left to the parser, which says what is wrong with it.
    """
    depth = 0
    for run in _BRACKETS.finditer(_STRING.sub("", text)):
        for char in run.group():
            depth += 1 if char in "[{" else -1
            if depth > max_depth:
                raise JSONTooDeep(f"JSON nested more than {max_depth} levels deep is not accepted")


def json_loads_bounded(text: str | bytes, *, max_depth: int = MAX_JSON_DEPTH, **kwargs):
    """json.loads, refusing documents nested deeper than `max_depth` with JSONTooDeep (a ValueError)."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8")
    json_depth_check(text, max_depth=max_depth)
    return json.loads(text, **kwargs)


class BoundedJSONParser(JSONParser):
    """DRF's JSONParser (strict: NaN and Infinity refused) with the nesting depth bounded: 400, never a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding") or "utf-8"
        raw = stream.read() if stream is not None else b""
        try:
            text = raw.decode(encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise ParseError(f"JSON parse error - the body is not {encoding} text: {exc}") from None
        parse_constant = drf_json.strict_constant if self.strict else None
        try:
            return json_loads_bounded(text, parse_constant=parse_constant)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
