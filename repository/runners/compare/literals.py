"""Sets and dicts printed in an order that comes from string hashing: put their items in one canonical order.

A set's iteration order follows ``PYTHONHASHSEED``, and so does the key order of a dict built from a set; the
sandbox pins the seed but the submitter's kernel did not. ``sort_unordered_collections(text)`` finds every
``{...}`` in the text that Python parses as a repr-like expression (constants, names, constructor calls such as
``np.float64(1.5)`` or ``frozenset({...})``, lists, tuples, sets and dicts, nested), and puts the elements of each
set and the items of each dict in the order of their (key) texts. Lists, tuples and call arguments keep their
order; dict items keep their values; each element keeps its own text and the separators stay where they were,
so numbers are still compared within tolerance afterwards and a pretty-printed (multi-line) dict keeps its layout.
A set that does not parse (its elements are ``<...>`` reprs, say) is still sorted when it is simple enough: one
line, no nested braces, no colon, its commas outside quotes and brackets.

The text is untrusted and may be megabytes long. It is parsed with ``ast.parse`` only (nothing is evaluated, as in
``ast.literal_eval``), one ``{...}`` at a time, each at most ``limits.LITERAL_MAX_CHARS`` long, and at most
``limits.LITERAL_PARSE_BUDGET_CHARS`` characters of parsing per text (each attempt costs at least
``_MIN_ATTEMPT_COST``); braces are found in one linear scan that stops after ``limits.LITERAL_MAX_SPANS``
balanced pairs (the rest of the text is left as it is). So the time this takes is bounded whatever the text, and
the result depends only on the text, never on a clock. Nothing here raises.
"""

from __future__ import annotations

import ast
import functools
import re
import warnings
from dataclasses import dataclass, field

from repository.runners.compare import limits

_MIN_ATTEMPT_COST = 64  # characters charged per parse attempt, so a million tiny "{x}" cannot cost a million parses
_MAX_NESTING = 64  # deeper brace nesting is no repr (Python's parser gives up at 200 anyway)
_REPR_NODES = (ast.Constant, ast.Name, ast.Attribute, ast.Call, ast.keyword, ast.UnaryOp, ast.BinOp, ast.Set,
               ast.Dict, ast.List, ast.Tuple, ast.Load, ast.USub, ast.UAdd, ast.Add, ast.Sub)
_INSIDE_BRACES = re.compile(r"[{}'\"]")
_STRING_END = {"'": re.compile(r"[\\'\n]"), '"': re.compile(r'[\\"\n]')}
_PARSE_ERRORS = (SyntaxError, ValueError, UnicodeError, RecursionError, MemoryError, OverflowError)


@dataclass
class _Span:
    """A balanced ``{...}`` of the text, ``text[start:end]``, with the balanced spans directly inside it."""

    start: int
    end: int = -1
    children: list[_Span] = field(default_factory=list)


def sort_unordered_collections(text: str) -> str:
    if "{" not in text or "," not in text:
        return text
    caps = (limits.LITERAL_MAX_CHARS, limits.LITERAL_PARSE_BUDGET_CHARS, limits.LITERAL_MAX_SPANS)
    if len(text) <= limits.LEAVE_ONE_OUT_CHARS:
        return _sorted_cached(text, caps)  # finding the rules that were needed normalises the same text again
    return _sort(text, caps)


@functools.lru_cache(maxsize=8)
def _sorted_cached(text: str, caps: tuple[int, int, int]) -> str:
    return _sort(text, caps)


def _sort(text: str, caps: tuple[int, int, int]) -> str:
    max_chars, parse_budget, max_spans = caps
    budget = [parse_budget]
    parts, position = [], 0
    for span in _brace_spans(text, max_spans):
        parts.append(text[position:span.start])
        parts.append(_process(text, span, budget, max_chars))
        position = span.end
    parts.append(text[position:])
    return "".join(parts)


# --- finding the braces -------------------------------------------------------------------------------------------


def _brace_spans(text: str, max_spans: int) -> list[_Span]:
    """The outermost balanced ``{...}`` spans, in order, each with its nested ones. Quotes count only inside
    braces (prose has apostrophes) and end at the line's end (a repr's strings never span lines)."""
    roots: list[_Span] = []
    stack: list[_Span] = []
    position, closed = 0, 0
    while closed < max_spans:
        if not stack:
            position = text.find("{", position)
            if position < 0:
                break
            stack.append(_Span(position))
            position += 1
            continue
        match = _INSIDE_BRACES.search(text, position)
        if match is None:
            break
        char, position = match.group(), match.end()
        if char == "{":
            stack.append(_Span(match.start()))
            if len(stack) > _MAX_NESTING:
                _abandon(stack, roots)
        elif char == "}":
            span = stack.pop()
            span.end = position
            closed += 1
            (stack[-1].children if stack else roots).append(span)
        else:
            string_end = _skip_string(text, position, char)
            if string_end is None:
                _abandon(stack, roots)  # not a repr's string: none of the open braces is a repr
            else:
                position = string_end
    _abandon(stack, roots)
    return roots


def _skip_string(text: str, position: int, quote: str) -> int | None:
    """The position after the string's closing quote, or None when the line (or the text) ends first."""
    pattern = _STRING_END[quote]
    while True:
        match = pattern.search(text, position)
        if match is None or match.group() == "\n":
            return None
        if match.group() == quote:
            return match.end()
        position = match.end() + 1  # a backslash escapes the next character


def _abandon(stack: list[_Span], roots: list[_Span]) -> None:
    """Unclosed braces are no repr; the balanced spans inside them still may be (in order: outer ones first)."""
    for span in stack:
        roots.extend(span.children)
    stack.clear()


# --- rewriting one span -------------------------------------------------------------------------------------------


def _process(text: str, span: _Span, budget: list[int], max_chars: int) -> str:
    source = text[span.start:span.end]
    tree = _parse_repr(source, budget, max_chars) if "," in source else None
    if tree is not None:
        return _Renderer(source).render(tree)
    if not span.children:
        return _sort_simple_set(source)
    parts, position = [], span.start
    for child in span.children:
        parts.append(text[position:child.start])
        parts.append(_process(text, child, budget, max_chars))
        position = child.end
    parts.append(text[position:span.end])
    return "".join(parts)


def _parse_repr(source: str, budget: list[int], max_chars: int) -> ast.expr | None:
    # Python reads a lone "\r" as a line break and the offsets below count "\n" only; reprs have neither.
    if len(source) > max_chars or budget[0] <= 0 or "\r" in source:
        return None
    budget[0] -= max(len(source), _MIN_ATTEMPT_COST)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "invalid escape sequence" in a printed string is no concern of ours
            tree = ast.parse(source, mode="eval").body
    except _PARSE_ERRORS:
        return None
    if not isinstance(tree, ast.Set | ast.Dict):
        return None
    for node in ast.walk(tree):
        if not isinstance(node, _REPR_NODES) or (isinstance(node, ast.Dict) and None in node.keys):
            return None  # code, a comprehension, a ** in a dict: not something a repr prints
    return tree


class _Renderer:
    """The text of a parsed span with every set and dict in canonical order (ast offsets are UTF-8 bytes)."""

    def __init__(self, source: str):
        self.source = source
        self.lines = source.split("\n")
        self.line_starts = [0]
        for line in self.lines[:-1]:
            self.line_starts.append(self.line_starts[-1] + len(line) + 1)

    def offset(self, line_number: int, byte_column: int) -> int:
        line = self.lines[line_number - 1]
        column = byte_column if line.isascii() else len(line.encode()[:byte_column].decode(errors="ignore"))
        return self.line_starts[line_number - 1] + column

    def bounds(self, node: ast.AST) -> tuple[int, int]:
        return self.offset(node.lineno, node.col_offset), self.offset(node.end_lineno, node.end_col_offset)

    def render(self, node: ast.AST) -> str:
        start, end = self.bounds(node)
        units = self._units(node)
        if not units:
            return self.source[start:end]
        replacements = [text for _, _, text, _ in units]
        if isinstance(node, ast.Set | ast.Dict):
            replacements = [text for _, _, text, _ in sorted(units, key=lambda unit: unit[3])]
        parts, position = [], start
        for (unit_start, unit_end, _, _), replacement in zip(units, replacements, strict=True):
            parts += [self.source[position:unit_start], replacement]
            position = unit_end
        parts.append(self.source[position:end])
        return "".join(parts)

    def _units(self, node: ast.AST) -> list[tuple[int, int, str, str]]:
        """The parts of a node that move or change: (start, end, rendered text, sort key), in source order."""
        if isinstance(node, ast.Dict):
            return [self._item(key, value) for key, value in zip(node.keys, node.values, strict=True)]
        children: list[ast.AST] = []
        if isinstance(node, ast.Set | ast.List | ast.Tuple):
            children = list(node.elts)
        elif isinstance(node, ast.Call):
            children = [*node.args, *(keyword.value for keyword in node.keywords)]
        elif isinstance(node, ast.UnaryOp):
            children = [node.operand]
        elif isinstance(node, ast.BinOp):
            children = [node.left, node.right]
        units = []
        for child in children:
            rendered = self.render(child)
            units.append((*self.bounds(child), rendered, _sort_key(rendered)))
        return sorted(units)

    def _item(self, key: ast.AST, value: ast.AST) -> tuple[int, int, str, str]:
        key_start, key_end = self.bounds(key)
        value_start, value_end = self.bounds(value)
        rendered_key = self.render(key)
        text = rendered_key + self.source[key_end:value_start] + self.render(value)
        return key_start, value_end, text, _sort_key(rendered_key)


def _sort_key(rendered: str) -> str:
    return " ".join(rendered.split())  # a pretty-printer may break an element over lines on one side only


# --- sets that do not parse ---------------------------------------------------------------------------------------


def _sort_simple_set(source: str) -> str:
    """``{<Color.RED>, <Color.BLUE>}``: elements split at top-level commas and sorted, if it is that simple."""
    inner = source[1:-1]
    if len(inner) < 3 or "," not in inner or ":" in inner or "\n" in inner or len(inner) > 5000:
        return source
    elements = _split_top_level_commas(inner)
    if elements is None:
        return source
    return "{" + ", ".join(sorted(element.strip() for element in elements)) + "}"


def _split_top_level_commas(text: str) -> list[str] | None:
    """Split at commas outside quotes and brackets; None if the quotes or brackets do not balance."""
    parts, start, depth, quote, escaped = [], 0, 0, None, False
    for position, char in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char in "([<":
            depth += 1
        elif char in ")]>":
            depth -= 1
            if depth < 0:
                return None
        elif char == "," and depth == 0:
            parts.append(text[start:position])
            start = position + 1
    if quote or depth:
        return None
    parts.append(text[start:])
    return parts
