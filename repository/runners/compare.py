"""Compare the outputs a notebook was submitted with against the outputs of its fresh execution.

Contract
--------
``compare_notebooks(submitted, executed, tolerance=...)`` takes two nbformat-4 notebooks as plain dicts (what
``json.loads`` gives) and returns a reproducibility report as a JSON-serialisable dict. It is pure: it reads no
settings (the caller passes the ``Tolerance``, e.g. built with ``Tolerance.from_dict`` from per-version
overrides), touches no database and never raises on odd-but-valid notebooks; outputs are untrusted, so
malformed images, giant images and giant texts end up as "differs" with a note, never as an exception.
``Tolerance(...)`` and ``Tolerance.from_dict`` raise ``ValueError`` for bad settings.

Cells are matched by position (the executed notebook is the submitted source run again). Only code cells are
compared and listed. The executed notebook must come from a run that started with outputs and execution counts
cleared, because nbclient leaves the cells it never reaches untouched: a code cell with source but neither
outputs nor an execution count in it, or one without outputs after the cell where execution stopped on an error,
is reported as "not_executed". Whether the execution as a whole succeeded is the caller's verdict, not ours.

Report::

    {"verdict": "reproduced" | "reproduced_with_differences" | "not_reproduced",
     "tolerance": {...}, "summary": {"code_cells", "identical", "within_tolerance", "differ", "skipped",
     "expected_errors", "no_stored_output", "not_executed"}, "notes": [str, ...],
     "cells": [{"index", "cell_id", "execution_count", "status", "tags", "source", "rules", "hint"?,
                "status_if_compared"? (skipped cells), "outputs": [entry, ...]}, ...]}

One output entry per stored output and MIME type: ``output_type``, ``mime``, ``name`` (streams), ``status``
("identical" | "within_tolerance" | "differs" | "missing" | "unexpected"), ``rules``, and, unless identical,
``expected``/``actual`` texts (capped), ``diff`` (unified diff of the *normalised* texts, capped),
``expected_image``/``actual_image``/``difference_image`` (base64 PNG, only when images differ),
``differing_pixels`` (fraction) and ``note``. HTML entries show the text extracted from the HTML.

How outputs are compared
------------------------
* Streams: stderr is taken out of the sequence (its interleaving with stdout is not stable) and compared as
  one text; the remaining consecutive streams of the same name are concatenated, because kernels split them
  arbitrarily. Outputs are then paired by kind in order (difflib), so one extra output does not shift the rest.
* Text (streams, text/plain, text/markdown, text/latex, the text of text/html, image/svg+xml): the
  normalisations below, then numbers compared within tolerance: the text is cut into numeric and other
  parts; the other parts must match (spacing aside), integers must be equal, floats (also ``1e-5``, ``nan``,
  ``inf``) must agree within ``rtol``/``atol``.
* Errors: ename and normalised evalue; tracebacks are ignored (they carry paths and ANSI codes).
* Images other than SVG: decoded with Pillow, flattened onto white and compared pixel by pixel.
* JSON MIME types: parsed and compared structurally, numbers within tolerance; widget views without model_id.
* Any other MIME type: equal after the text normalisations.
* Texts over ``MAX_COMPARED_CHARS`` are compared by SHA-256 of the raw text, as the entry's note says.

Rules and verdicts
------------------
Every rule needed to make an output match is named in the report. Harmless rules remove what changes on
every honest run and leave the cell "identical", so the notebook can still be "reproduced": line endings,
ANSI codes, progress bars (carriage returns), progress rates and times, timing measurements, memory
addresses, temporary paths, installation paths, timestamps, set ordering, trailing whitespace, SVG ids,
HTML compared by its text, widget model ids, images compared by pixels (pixel-identical, bytes differ).
Tolerance rules accept a real but small difference and make the cell "within_tolerance", so the notebook is
at best "reproduced_with_differences": numbers within tolerance, column alignment (spaces), image pixels
within tolerance, stderr differences (warnings, logging and progress on stderr never make a cell differ).

A cell "differs" when an output differs beyond tolerance, a stored output is missing, a new output other than
stderr appears, an error appears, or a ``raises-exception`` cell raised nothing. Cells tagged
``nbarchive-skip-compare``/``nbval-ignore-output`` are still compared but listed as "skipped": if they differ,
the notebook is at best "reproduced_with_differences". Cells that have no stored outputs but produce some now
("no_stored_output") cannot be checked and count the same way. "not_executed" cells count as differing.
Verdict: "reproduced" if every code cell is identical, "not_reproduced" if any cell differs, else
"reproduced_with_differences".
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import difflib
import hashlib
import io
import json
import math
import re
import statistics
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from itertools import zip_longest
from typing import Any

from PIL import Image, ImageChops

SKIP_COMPARE_TAGS = ("nbarchive-skip-compare", "nbval-ignore-output")
RAISES_EXCEPTION_TAGS = ("raises-exception", "nbval-raises-exception")

SOURCE_CHARS = 2_000
REPORT_TEXT_CHARS = 20_000
MAX_COMPARED_CHARS = 10_000_000
# Finding which normalisations were *needed* re-runs the comparison once per rule; above this size we list
# every rule that changed something instead.
LEAVE_ONE_OUT_CHARS = 1_000_000
DIFF_INPUT_LINES = 5_000
MAX_IMAGE_PIXELS = 50_000_000
REPORT_IMAGE_SIDE = 1_600
REPORT_IMAGE_BUDGET_CHARS = 25_000_000
MAX_LISTED_CELLS = 20

RULE_LINE_ENDINGS = "line endings"
RULE_ANSI = "ANSI codes"
RULE_CARRIAGE_RETURNS = "progress bars (carriage returns)"
RULE_PROGRESS = "progress rates and times"
RULE_TIMINGS = "timing measurements"
RULE_ADDRESSES = "memory addresses"
RULE_TEMP_PATHS = "temporary paths"
RULE_INSTALL_PATHS = "installation paths"
RULE_TIMESTAMPS = "timestamps"
RULE_SET_ORDER = "set ordering"
RULE_TRAILING_WHITESPACE = "trailing whitespace"
RULE_SVG_IDS = "SVG ids"
RULE_HTML_TEXT = "HTML compared by its text"
RULE_WIDGET_IDS = "widget model ids"
RULE_IMAGE_PIXELS = "images compared by pixels"
RULE_NUMBERS = "numbers within tolerance"
RULE_ALIGNMENT = "column alignment (spaces)"
RULE_IMAGE_TOLERANCE = "image pixels within tolerance"
RULE_STDERR = "stderr differences"

HARMLESS_RULES = (
    RULE_LINE_ENDINGS, RULE_ANSI, RULE_CARRIAGE_RETURNS, RULE_PROGRESS, RULE_TIMINGS, RULE_ADDRESSES,
    RULE_TEMP_PATHS, RULE_INSTALL_PATHS, RULE_TIMESTAMPS, RULE_SET_ORDER, RULE_TRAILING_WHITESPACE,
    RULE_SVG_IDS, RULE_HTML_TEXT, RULE_WIDGET_IDS, RULE_IMAGE_PIXELS,
)
TOLERANCE_RULES = (RULE_NUMBERS, RULE_ALIGNMENT, RULE_IMAGE_TOLERANCE, RULE_STDERR)

RANDOM_NUMBERS_HINT = "The numbers differ widely between runs; is the random generator seeded?"

# Severities, ordered so that the worst of several is their max().
IDENTICAL, WITHIN_TOLERANCE, DIFFERS = 0, 1, 2
_STATUS = {IDENTICAL: "identical", WITHIN_TOLERANCE: "within_tolerance", DIFFERS: "differs"}
_VERDICT = {IDENTICAL: "reproduced", WITHIN_TOLERANCE: "reproduced_with_differences", DIFFERS: "not_reproduced"}

WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
# MIME types whose text may carry computed numbers; others must match exactly after normalisation.
NUMERIC_TEXT_MIMES = frozenset({"text/plain", "text/markdown", "text/latex"})


# --- Tolerance -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Tolerance:
    """How far fresh outputs may stray from the stored ones and still count as reproduced with differences."""

    rtol: float = 1e-9          # relative tolerance for floats
    atol: float = 1e-12         # absolute tolerance for floats
    pixel_tolerance: int = 8    # per-channel difference (0-255) up to which two pixels count as equal
    max_differing_pixels: float = 0.001   # fraction of pixels allowed to differ beyond pixel_tolerance

    def __post_init__(self):
        # Validate here rather than only in from_dict, so a Tolerance built from settings cannot be nonsense.
        for name in ("rtol", "atol"):
            object.__setattr__(self, name, _non_negative_number(name, getattr(self, name)))
        fraction = _non_negative_number("max_differing_pixels", self.max_differing_pixels)
        if fraction > 1:
            raise ValueError(f"Tolerance setting 'max_differing_pixels' is a fraction from 0 to 1, not {fraction!r}.")
        object.__setattr__(self, "max_differing_pixels", fraction)
        pixel = self.pixel_tolerance
        if isinstance(pixel, bool) or not isinstance(pixel, int) or not 0 <= pixel <= 255:
            raise ValueError(f"Tolerance setting 'pixel_tolerance' must be a whole number from 0 to 255, not {pixel!r}.")

    @classmethod
    def from_dict(cls, values: dict | None, *, default: Tolerance) -> Tolerance:
        """Apply per-version overrides such as ``{"rtol": 1e-6}`` to ``default``; ``None`` means no overrides."""
        if values is None:
            return default
        if not isinstance(values, dict):
            # ValueError, not TypeError: callers treat every bad override the same way (a clear message).
            raise ValueError(  # noqa: TRY004
                f"Tolerance overrides must be a mapping of setting names to values, not {type(values).__name__}.")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(str(key) for key in values if key not in known)
        if unknown:
            raise ValueError(f"Unknown tolerance setting(s) {', '.join(map(repr, unknown))}; "
                             f"the settings are {', '.join(sorted(known))}.")
        return dataclasses.replace(default, **values)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _non_negative_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"Tolerance setting {name!r} must be a finite number of at least 0, not {value!r}.")
    return float(value)


# --- Text normalisations -------------------------------------------------------------------------------------

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]")


def _strip_ansi(text: str) -> str:
    return _ANSI_ESCAPE.sub("", text)


def _unify_line_endings(text: str) -> str:
    return text.replace("\r\n", "\n")


def _apply_carriage_returns(text: str) -> str:
    """Render each line as a terminal would: \\r returns to column 0 and overwrites, \\b steps back one column.

    Frontends save progress bars already rendered this way while nbclient keeps every intermediate state.
    """
    if "\r" not in text and "\b" not in text:
        return text
    return "\n".join(_render_terminal_line(line) for line in text.split("\n"))


def _render_terminal_line(line: str) -> str:
    if "\b" not in line:
        rendered = ""
        for segment in line.split("\r"):
            rendered = segment + rendered[len(segment):]
        return rendered
    columns: list[str] = []
    cursor = 0
    for char in line:
        if char == "\r":
            cursor = 0
        elif char == "\b":
            cursor = max(0, cursor - 1)
        else:
            if cursor < len(columns):
                columns[cursor] = char
            else:
                columns.append(char)
            cursor += 1
    return "".join(columns)


@dataclass(frozen=True)
class _Replacement:
    """A regex replacement that runs only when its literal marker occurs in the text.

    The marker check is a fast substring search; without it, patterns that start with a digit or a wildcard
    backtrack at every position of a multi-megabyte table of numbers.
    """

    marker: str
    pattern: re.Pattern
    placeholder: str

    def apply(self, text: str) -> str:
        return self.pattern.sub(self.placeholder, text) if self.marker in text else text


def _apply_all(replacements: tuple[_Replacement, ...], text: str) -> str:
    for replacement in replacements:
        text = replacement.apply(text)
    return text


# tqdm "[00:01<00:02, 12.3it/s]", byte rates, "1.5s/it"; Keras "ETA: 3s", "5ms/step", "- 2s". Units are
# limited to those progress libraries print, so a physics notebook's "3.2 m/s" stays compared.
_PROGRESS_REPLACEMENTS = (
    _Replacement("<", re.compile(r"(?<![\d:])(?:\d+:)?\d{1,2}:\d{2}<(?:(?:\d+:)?\d{1,2}:\d{2}|\?)"),
                 "<elapsed><<remaining>"),
    _Replacement("/s", re.compile(r"(?:(?<![\d.])\d+(?:\.\d+)?|\?)\s?(?:[kMGTP]i?)?(?:it|B|b|bytes)/s\b"), "<rate>"),
    _Replacement("s/", re.compile(r"(?<![\d.])\d+(?:\.\d+)?\s?s/(?:it|B)\b"), "<rate>"),
    _Replacement("ETA: ", re.compile(r"\bETA: (?:\d+:)*\d+s?\b"), "ETA: <eta>"),
    _Replacement("s/", re.compile(r"(?<![\d.])\d+(?:\.\d+)?(?:ms|us|µs|s)/(?:step|sample|epoch)\b"), "<time>/step"),
    _Replacement("] - ", re.compile(r"(?<=\] - )\d+m?s\b"), "<elapsed>"),
)


def _normalise_progress(text: str) -> str:
    return _apply_all(_PROGRESS_REPLACEMENTS, text)


# %time and %timeit measure the machine, not the notebook.
_TIMING_REPLACEMENTS = (
    _Replacement("CPU times: ", re.compile(r"CPU times: [^\n]*"), "CPU times: <timing>"),
    _Replacement("Wall time: ", re.compile(r"Wall time: [^\n]*"), "Wall time: <timing>"),
    _Replacement(" per loop (mean ± std. dev. of ",
                 re.compile(r"^[^\n]* per loop \(mean ± std\. dev\. of [^\n]*\)", re.MULTILINE), "<timeit result>"),
    _Replacement(" per loop", re.compile(r"(?<!\d)\d+ loops?, best of \d+: [^\n]* per loop"), "<timeit result>"),
    _Replacement("The slowest run took ", re.compile(r"The slowest run took [^\n]*\n?(?:[^\n]*cached\.\n?)?"), ""),
)


def _normalise_timings(text: str) -> str:
    return _apply_all(_TIMING_REPLACEMENTS, text)


_AT_ADDRESS = re.compile(r"\bat 0x[0-9a-fA-F]+")
_ANGLE_BRACKETED = re.compile(r"<[^<>\n]{1,500}>")
_LONG_HEX = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")


def _normalise_addresses(text: str) -> str:
    """`<Foo object at 0x7f...>`, `<function f at 0x...>` and other addresses inside a `<...>` repr."""
    text = _AT_ADDRESS.sub("at 0x<address>", text)
    return _ANGLE_BRACKETED.sub(lambda match: _LONG_HEX.sub("0x<address>", match.group()), text)


_MAC_TEMP_DIR = re.compile(r"/(?:private/)?var/folders/[\w+-]+/[\w+-]+/T(?=/)")
_WINDOWS_TEMP_DIR = re.compile(r"[A-Za-z]:\\Users\\[^\\\s]+\\AppData\\Local\\Temp(?=\\)")
_IPYKERNEL_FILE = re.compile(r"/tmp[/\\]ipykernel_\d+[/\\]\d+\.py")
_IPYTHON_INPUT = re.compile(r"<ipython-input-\d+-[0-9a-f]+>")
_MKDTEMP_NAME = re.compile(r"/tmp[/\\]tmp[a-z0-9_]{8}(?![a-z0-9_])")


def _normalise_temp_paths(text: str) -> str:
    """Kernel cell files and mkdtemp names; submitters run on macOS and Windows too, so unify the temp dir."""
    text = _MAC_TEMP_DIR.sub("/tmp", text)
    text = _WINDOWS_TEMP_DIR.sub("/tmp", text)
    text = _IPYKERNEL_FILE.sub("/tmp/ipykernel_<pid>/<cell>.py", text)
    text = _IPYTHON_INPUT.sub("<ipython-input>", text)
    return _MKDTEMP_NAME.sub("/tmp/tmp<random>", text)


_SITE_PACKAGES = _Replacement(
    "-packages", re.compile(r"(?<![^\s'\"<>()\[\]])[^\s'\"<>()\[\]]*[/\\](?:site|dist)-packages(?=[/\\])"),
    "<site-packages>")


def _normalise_install_paths(text: str) -> str:
    """Where Python libraries are installed differs between the submitter's machine and the sandbox."""
    return _SITE_PACKAGES.apply(text)


_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_WEEKDAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_HOUR_MINUTE = r"(?:[01]\d|2[0-3]):[0-5]\d"
_CLOCK = rf"{_HOUR_MINUTE}:[0-5]\d(?:[.,]\d{{1,9}})?"
_ISO_DATE = r"(?:1[89]|2[01])\d\d-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])"
# Only recognisable shapes: a bare "12:30" or "2024" could be data.
_TIMESTAMP_REPLACEMENTS = (
    _Replacement(":", re.compile(rf"\b{_WEEKDAY} {_MONTH} [ \d]\d {_CLOCK} \d{{4}}\b"), "<datetime>"),
    _Replacement(":", re.compile(rf"\b{_WEEKDAY}, \d{{1,2}} {_MONTH} \d{{4}} {_CLOCK}(?: (?:[+-]\d{{4}}|GMT|UTC))?"),
                 "<datetime>"),
    _Replacement("datetime.datetime(", re.compile(
        r"\bdatetime\.datetime\(\d{4}(?:, \d{1,6}){2,6}(?:, tzinfo=[^()\n]*(?:\([^()\n]*\))?)?\)"),
        "datetime.datetime(<datetime>)"),
    _Replacement("datetime.date(", re.compile(r"\bdatetime\.date\(\d{4}, \d{1,2}, \d{1,2}\)"),
                 "datetime.date(<date>)"),
    _Replacement("-", re.compile(
        rf"(?<!\d){_ISO_DATE}[T ]{_HOUR_MINUTE}(?::[0-5]\d(?:[.,]\d{{1,9}})?)?(?:Z|[+-]\d\d:?\d\d)?(?!\d)"),
        "<datetime>"),
    _Replacement("-", re.compile(rf"(?<!\d){_ISO_DATE}\b"), "<date>"),
    _Replacement(":", re.compile(rf"(?<!\d){_CLOCK}(?!\d)"), "<time>"),
)


def _normalise_timestamps(text: str) -> str:
    return _apply_all(_TIMESTAMP_REPLACEMENTS, text)


# A brace pair with a comma and no colon is a set repr (a dict repr has colons); no nesting. The length bound
# keeps an unclosed "{" on a megabyte-long line from costing a scan per comma.
_SET_LITERAL = re.compile(r"\{([^{}:\n]{3,5000})\}")


def _sort_set_literals(text: str) -> str:
    """Set iteration order follows string hashes; the sandbox pins PYTHONHASHSEED, the submitter may not have."""
    return _SET_LITERAL.sub(_sorted_set_literal, text) if "{" in text else text


def _sorted_set_literal(match: re.Match) -> str:
    elements = _split_top_level_commas(match.group(1)) if "," in match.group(1) else None
    if elements is None:
        return match.group()
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
        elif char in "([":
            depth += 1
        elif char in ")]":
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


def _strip_trailing_whitespace(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.split("\n")).rstrip("\n")


_SVG_ID_DEFINITION = re.compile(r'\bid="([^"]+)"')
_SVG_ID_OR_REFERENCE = re.compile(r'(\bid="|#)([\w.:-]+)')


def _normalise_svg_ids(svg: str) -> str:
    """Matplotlib and others name clip paths and markers randomly; rename them in order of first appearance."""
    new_names: dict[str, str] = {}
    for old_name in _SVG_ID_DEFINITION.findall(svg):
        new_names.setdefault(old_name, f"svg-id-{len(new_names) + 1}")
    if not new_names:
        return svg

    def rename(match: re.Match) -> str:
        new_name = new_names.get(match.group(2))
        return match.group(1) + new_name if new_name else match.group()

    return _SVG_ID_OR_REFERENCE.sub(rename, svg)


@dataclass(frozen=True)
class _Normalisation:
    rule: str
    apply: Callable[[str], str]


# Order matters: line endings before carriage returns, ANSI codes before trailing whitespace, progress and
# timing shapes before the clock times inside them.
TEXT_NORMALISATIONS = (
    _Normalisation(RULE_LINE_ENDINGS, _unify_line_endings),
    _Normalisation(RULE_ANSI, _strip_ansi),
    _Normalisation(RULE_CARRIAGE_RETURNS, _apply_carriage_returns),
    _Normalisation(RULE_PROGRESS, _normalise_progress),
    _Normalisation(RULE_TIMINGS, _normalise_timings),
    _Normalisation(RULE_ADDRESSES, _normalise_addresses),
    _Normalisation(RULE_TEMP_PATHS, _normalise_temp_paths),
    _Normalisation(RULE_INSTALL_PATHS, _normalise_install_paths),
    _Normalisation(RULE_TIMESTAMPS, _normalise_timestamps),
    _Normalisation(RULE_SET_ORDER, _sort_set_literals),
    _Normalisation(RULE_TRAILING_WHITESPACE, _strip_trailing_whitespace),
)
SVG_NORMALISATIONS = (_Normalisation(RULE_SVG_IDS, _normalise_svg_ids), *TEXT_NORMALISATIONS)


def _normalise(text: str, normalisations: Iterable[_Normalisation]) -> tuple[str, set[str]]:
    """Return the normalised text and the rules that changed it."""
    changed = set()
    for normalisation in normalisations:
        normalised = normalisation.apply(text)
        if normalised != text:
            changed.add(normalisation.rule)
        text = normalised
    return text, changed


# --- Numbers in text -----------------------------------------------------------------------------------------

# Not preceded by a letter, digit or dot, so identifiers ("x1", "float64") and version tails ("1.5.2") stay text.
_NUMBER = re.compile(
    r"(?<![A-Za-z_\d.])[-+]?"
    r"(?:(?:\d+\.\d*|\.\d+)(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+|\d+|nan|NaN|inf|Inf|infinity|Infinity)"
    r"(?![A-Za-z_\d])"
)
_HORIZONTAL_SPACE = re.compile(r"[ \t]+")
_INTEGER = re.compile(r"[-+]?\d+")
# Python refuses to parse longer integer strings (int_max_str_digits).
_MAX_INTEGER_DIGITS = 4_000


@dataclass
class _TextMatch:
    severity: int
    rules: list[str] = field(default_factory=list)
    hint: str | None = None


def _match_normalised(expected: str, actual: str, *, numeric: bool, tolerance: Tolerance) -> _TextMatch:
    if expected == actual:
        return _TextMatch(IDENTICAL)
    if not numeric:
        return _TextMatch(DIFFERS)
    return _match_numbers(expected, actual, tolerance)


def _match_numbers(expected: str, actual: str, tolerance: Tolerance) -> _TextMatch:
    """Walk both texts number by number (streaming, so a 10 MB table costs no token lists)."""
    expected_position = actual_position = 0
    numbers_compared = 0
    numbers_reformatted = spacing_differs = False
    beyond_tolerance: list[tuple[float, bool]] = []  # (relative difference, both integers)
    for expected_number, actual_number in zip_longest(_NUMBER.finditer(expected), _NUMBER.finditer(actual)):
        if expected_number is None or actual_number is None:
            return _TextMatch(DIFFERS)
        between = _compare_between(expected[expected_position:expected_number.start()],
                                   actual[actual_position:actual_number.start()])
        if between == DIFFERS:
            return _TextMatch(DIFFERS)
        spacing_differs |= between == WITHIN_TOLERANCE
        numbers_compared += 1
        if expected_number.group() != actual_number.group():
            close, relative_difference = _numbers_agree(expected_number.group(), actual_number.group(), tolerance)
            if close:
                numbers_reformatted = True
            else:
                both_integers = bool(_INTEGER.fullmatch(expected_number.group())
                                     and _INTEGER.fullmatch(actual_number.group()))
                beyond_tolerance.append((relative_difference, both_integers))
        expected_position, actual_position = expected_number.end(), actual_number.end()
    tail = _compare_between(expected[expected_position:], actual[actual_position:])
    if tail == DIFFERS:
        return _TextMatch(DIFFERS)
    spacing_differs |= tail == WITHIN_TOLERANCE
    if beyond_tolerance:
        return _TextMatch(DIFFERS, hint=_numbers_hint(numbers_compared, beyond_tolerance))
    rules = [RULE_NUMBERS] * numbers_reformatted + [RULE_ALIGNMENT] * spacing_differs
    return _TextMatch(WITHIN_TOLERANCE if rules else IDENTICAL, rules)


def _compare_between(expected: str, actual: str) -> int:
    """Text between numbers must match; spacing may differ because numbers of other widths realign columns."""
    if expected == actual:
        return IDENTICAL
    if _HORIZONTAL_SPACE.sub("", expected) == _HORIZONTAL_SPACE.sub("", actual):
        return WITHIN_TOLERANCE
    return DIFFERS


def _numbers_agree(expected: str, actual: str, tolerance: Tolerance) -> tuple[bool, float]:
    """Whether two numeric tokens agree (integers exactly, floats within tolerance), and how far apart they are."""
    if _INTEGER.fullmatch(expected) and _INTEGER.fullmatch(actual):
        if max(len(expected), len(actual)) > _MAX_INTEGER_DIGITS:
            return expected.lstrip("+") == actual.lstrip("+"), math.inf
        expected_int, actual_int = int(expected), int(actual)
        return expected_int == actual_int, _relative_difference(expected_int, actual_int)
    expected_float, actual_float = float(expected), float(actual)
    if math.isnan(expected_float) or math.isnan(actual_float):
        both_nan = math.isnan(expected_float) and math.isnan(actual_float)
        return both_nan, 0.0 if both_nan else math.inf
    if math.isclose(expected_float, actual_float, rel_tol=tolerance.rtol, abs_tol=tolerance.atol):
        return True, 0.0
    return False, _relative_difference(expected_float, actual_float)


def _relative_difference(expected: float, actual: float) -> float:
    try:
        scale = max(abs(expected), abs(actual))
        difference = abs(expected - actual) / scale if scale else 0.0
    except (OverflowError, ArithmeticError):
        return math.inf
    # inf against -inf (or against a finite number) gives nan here: infinitely far apart.
    return difference if math.isfinite(difference) else math.inf


def _numbers_hint(numbers_compared: int, beyond_tolerance: list[tuple[float, bool]]) -> str | None:
    """Name the two usual causes a moderator can act on: unseeded randomness, and noise above the tolerance."""
    differences = [difference for difference, _ in beyond_tolerance]
    most_numbers_changed = len(differences) >= 3 and 2 * len(differences) >= numbers_compared
    if most_numbers_changed and statistics.median(differences) >= 0.01:
        return RANDOM_NUMBERS_HINT
    largest = max(differences)
    # Integers are compared exactly whatever the tolerance, so suggesting one would not help.
    if largest < 1e-3 and not any(both_integers for _, both_integers in beyond_tolerance):
        suggested_rtol = 10.0 ** math.ceil(math.log10(largest * 1.01)) if largest > 0 else 1e-9
        return (f"The numbers differ only slightly (largest relative difference {largest:.1e}); if that is "
                f"floating-point noise, a tolerance of rtol={suggested_rtol:.0e} for this version would accept it.")
    return None


# --- Text comparison with rules ------------------------------------------------------------------------------

@dataclass
class _TextOutcome:
    severity: int
    rules: list[str] = field(default_factory=list)
    hint: str | None = None
    diff: str | None = None
    note: str | None = None


def _compare_text(expected: str, actual: str, *, tolerance: Tolerance, numeric: bool,
                  normalisations: tuple[_Normalisation, ...] = TEXT_NORMALISATIONS) -> _TextOutcome:
    if expected == actual:
        return _TextOutcome(IDENTICAL)
    if max(len(expected), len(actual)) > MAX_COMPARED_CHARS:
        return _compare_by_hash(expected, actual)
    normalised_expected, changed_expected = _normalise(expected, normalisations)
    normalised_actual, changed_actual = _normalise(actual, normalisations)
    match = _match_normalised(normalised_expected, normalised_actual, numeric=numeric, tolerance=tolerance)
    if match.severity == DIFFERS:
        return _TextOutcome(DIFFERS, hint=match.hint, diff=_unified_diff(normalised_expected, normalised_actual))
    candidates = [n for n in normalisations if n.rule in changed_expected | changed_actual]
    needed = _needed_normalisations(expected, actual, candidates, normalisations, match.severity,
                                    numeric=numeric, tolerance=tolerance)
    diff = _unified_diff(normalised_expected, normalised_actual) if match.severity == WITHIN_TOLERANCE else None
    return _TextOutcome(match.severity, needed + match.rules, diff=diff)


def _needed_normalisations(expected: str, actual: str, candidates: list[_Normalisation],
                           normalisations: tuple[_Normalisation, ...], severity: int, *,
                           numeric: bool, tolerance: Tolerance) -> list[str]:
    """The rules without which the outputs would match worse, so a moderator is not told about no-op rules."""
    if len(expected) + len(actual) > LEAVE_ONE_OUT_CHARS:
        return [candidate.rule for candidate in candidates]
    needed = []
    for candidate in candidates:
        others = [n for n in normalisations if n is not candidate]
        without = _match_normalised(_normalise(expected, others)[0], _normalise(actual, others)[0],
                                    numeric=numeric, tolerance=tolerance)
        if without.severity > severity:
            needed.append(candidate.rule)
    # Two rules that each suffice alone are both "not needed"; name them rather than nothing.
    return needed or [candidate.rule for candidate in candidates]


def _compare_by_hash(expected: str, actual: str) -> _TextOutcome:
    expected_digest = hashlib.sha256(expected.encode("utf-8", "surrogatepass")).hexdigest()
    actual_digest = hashlib.sha256(actual.encode("utf-8", "surrogatepass")).hexdigest()
    severity = IDENTICAL if expected_digest == actual_digest else DIFFERS
    note = (f"Output larger than {MAX_COMPARED_CHARS:,} characters: compared by SHA-256 of the raw text without "
            f"normalisation (submitted {expected_digest}, re-executed {actual_digest}).")
    return _TextOutcome(severity, note=note)


def _unified_diff(expected: str, actual: str) -> str:
    """A unified diff of at most DIFF_INPUT_LINES lines, starting just before the first differing line."""
    expected_lines, actual_lines = expected.split("\n"), actual.split("\n")
    first_difference = next((number for number, (e, a) in enumerate(zip(expected_lines, actual_lines)) if e != a),
                            min(len(expected_lines), len(actual_lines)))
    start = max(0, first_difference - 3)
    end = start + DIFF_INPUT_LINES
    diff = "\n".join(difflib.unified_diff(
        expected_lines[start:end], actual_lines[start:end], lineterm="",
        fromfile="submitted" + (f" (from line {start + 1})" if start else ""),
        tofile="re-executed" + (f" (from line {start + 1})" if start else "")))
    if max(len(expected_lines), len(actual_lines)) > end:
        diff += f"\n… [only lines {start + 1:,} to {end:,} were diffed]"
    return _cap(diff)


def _cap(text: str | None) -> str | None:
    limit = REPORT_TEXT_CHARS
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"\n… [cut: {len(text):,} characters in all]"


# --- HTML ----------------------------------------------------------------------------------------------------

class _HTMLTextExtractor(HTMLParser):
    """The text a reader sees: no scripts or styles, one line per block, table cells separated by ' | '."""

    _HIDDEN = frozenset({"script", "style", "template"})
    _BLOCKS = frozenset({"address", "article", "aside", "blockquote", "br", "caption", "dd", "div", "dl", "dt",
                         "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr",
                         "li", "main", "nav", "ol", "p", "pre", "section", "table", "tbody", "tfoot", "thead",
                         "tr", "ul"})
    _CELLS = frozenset({"td", "th"})

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden_depth = 0
        self._pre_depth = 0

    def handle_starttag(self, tag, attrs):
        if tag in self._HIDDEN:
            self._hidden_depth += 1
        elif tag in self._CELLS:
            self.parts.append(" | ")
        elif tag in self._BLOCKS:
            self.parts.append("\n")
        if tag == "pre":
            self._pre_depth += 1

    def handle_endtag(self, tag):
        if tag in self._HIDDEN:
            self._hidden_depth = max(0, self._hidden_depth - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")
        if tag == "pre":
            self._pre_depth = max(0, self._pre_depth - 1)

    def handle_data(self, data):
        if self._hidden_depth:
            return
        # Outside <pre>, HTML renders any run of whitespace as one space.
        self.parts.append(data if self._pre_depth else re.sub(r"\s+", " ", data))


def _html_text(html: str) -> str:
    extractor = _HTMLTextExtractor()
    # Untrusted markup: if the parser gives up, what it parsed so far is still the best text we have.
    with contextlib.suppress(Exception):
        extractor.feed(html)
        extractor.close()
    lines = (re.sub(r"[ \t\xa0]+", " ", line).strip() for line in "".join(extractor.parts).split("\n"))
    return "\n".join(line for line in lines if line)


# --- Images --------------------------------------------------------------------------------------------------

class _UndecodableImage(Exception):
    pass


class _ImageBudget:
    """Caps the base64 image text in one report, so a notebook of a hundred changed figures stays loadable."""

    def __init__(self, chars: int):
        self.remaining = chars
        self.exhausted = False

    def take(self, encoded: str) -> str | None:
        if len(encoded) > self.remaining:
            self.exhausted = True
            return None
        self.remaining -= len(encoded)
        return encoded


def _decode_image(value: Any) -> Image.Image:
    """Decode a base64 image into RGB flattened onto white, so transparent pixels compare as they look."""
    try:
        raw = base64.b64decode("".join(_as_text(value).split()), validate=True)
    except (binascii.Error, ValueError) as error:
        raise _UndecodableImage(f"it is not valid base64 ({error})") from error
    too_large = f"it has more than the {MAX_IMAGE_PIXELS:,} pixels this comparison decodes"
    try:
        with warnings.catch_warnings():
            # Pillow only warns below twice its own limit; a warning here would reach the worker's log instead.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as image:
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise _UndecodableImage(f"it is {width}×{height} pixels; {too_large}")
                image.load()
                rgba = image.convert("RGBA")
    except _UndecodableImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise _UndecodableImage(too_large) from error
    except Exception as error:  # Pillow raises many types on hostile input
        raise _UndecodableImage(f"Pillow cannot read it ({type(error).__name__}: {error})") from error
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _encode_for_report(image: Image.Image, budget: _ImageBudget) -> str | None:
    shown = image
    if max(image.size) > REPORT_IMAGE_SIDE:
        shown = image.copy()
        shown.thumbnail((REPORT_IMAGE_SIDE, REPORT_IMAGE_SIDE))
    buffer = io.BytesIO()
    shown.save(buffer, format="PNG")
    return budget.take(base64.b64encode(buffer.getvalue()).decode("ascii"))


def _difference_image(expected: Image.Image, beyond_tolerance: Image.Image) -> Image.Image:
    """The submitted picture faded to grey, with the pixels that differ beyond tolerance in red."""
    faded = expected.convert("L").point(lambda value: 160 + value * 95 // 255).convert("RGB")
    red = Image.new("RGB", expected.size, (220, 0, 0))
    return Image.composite(red, faded, beyond_tolerance)


def _compare_image(base: dict, expected_value: Any, actual_value: Any, context: _Context) -> _Entry:
    if _as_text(expected_value) == _as_text(actual_value):
        return _Entry({**base, "status": "identical", "rules": []}, IDENTICAL)
    images = {}
    for side, value in (("submitted", expected_value), ("re-executed", actual_value)):
        try:
            images[side] = _decode_image(value)
        except _UndecodableImage as problem:
            return _Entry({**base, "status": "differs", "rules": [],
                           "note": f"The {side} {base['mime']} image could not be compared: {problem}."}, DIFFERS)
    expected, actual = images["submitted"], images["re-executed"]
    if expected.size != actual.size:
        report = {**base, "status": "differs", "rules": [],
                  "note": f"The image size changed from {expected.width}×{expected.height} "
                          f"to {actual.width}×{actual.height} pixels."}
        _attach_images(report, context, expected_image=expected, actual_image=actual)
        return _Entry(report, DIFFERS)
    return _compare_pixels(base, expected, actual, context)


def _compare_pixels(base: dict, expected: Image.Image, actual: Image.Image, context: _Context) -> _Entry:
    tolerance = context.tolerance
    red, green, blue = ImageChops.difference(expected, actual).split()
    largest_channel_difference = ImageChops.lighter(ImageChops.lighter(red, green), blue)
    histogram = largest_channel_difference.histogram()
    pixel_count = expected.width * expected.height
    if pixel_count == 0 or not any(histogram[1:]):
        return _Entry({**base, "status": "identical", "rules": [RULE_IMAGE_PIXELS]}, IDENTICAL, [RULE_IMAGE_PIXELS])
    differing = sum(histogram[tolerance.pixel_tolerance + 1:]) / pixel_count
    if differing <= tolerance.max_differing_pixels:
        rules = [RULE_IMAGE_TOLERANCE]
        report = {**base, "status": "within_tolerance", "rules": rules, "differing_pixels": differing}
        return _Entry(report, WITHIN_TOLERANCE, rules)
    beyond_tolerance = largest_channel_difference.point(
        lambda value: 255 if value > tolerance.pixel_tolerance else 0, mode="1")
    report = {**base, "status": "differs", "rules": [], "differing_pixels": differing}
    _attach_images(report, context, expected_image=expected, actual_image=actual,
                   difference_image=_difference_image(expected, beyond_tolerance))
    return _Entry(report, DIFFERS)


def _attach_images(report: dict, context: _Context, **images: Image.Image) -> None:
    for key, image in images.items():
        encoded = _encode_for_report(image, context.image_budget)
        if encoded is None:
            report["note"] = ((report.get("note") or "") + " Images left out to keep the report small.").strip()
            return
        report[key] = encoded


def _image_for_report(value: Any, context: _Context) -> str | None:
    try:
        return _encode_for_report(_decode_image(value), context.image_budget)
    except _UndecodableImage:
        return None


# --- JSON ----------------------------------------------------------------------------------------------------

def _is_json_mime(mime: str) -> bool:
    return mime == "application/json" or mime.endswith("+json")


def _parse_json_value(value: Any) -> Any:
    """nbformat stores JSON MIME data parsed; tolerate a JSON string too."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _compare_json_values(expected: Any, actual: Any, tolerance: Tolerance) -> tuple[int, set[str]]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        if expected.keys() != actual.keys():
            return DIFFERS, set()
        return _worst(_compare_json_values(expected[key], actual[key], tolerance) for key in expected)
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return DIFFERS, set()
        return _worst(_compare_json_values(e, a, tolerance) for e, a in zip(expected, actual))
    if _is_json_number(expected) and _is_json_number(actual):
        if expected == actual:
            return IDENTICAL, set()
        if isinstance(expected, int) and isinstance(actual, int):
            return DIFFERS, set()
        close = math.isclose(expected, actual, rel_tol=tolerance.rtol, abs_tol=tolerance.atol)
        return (WITHIN_TOLERANCE, {RULE_NUMBERS}) if close else (DIFFERS, set())
    if isinstance(expected, str) and isinstance(actual, str) and expected != actual:
        normalised_expected, changed_expected = _normalise(expected, TEXT_NORMALISATIONS)
        normalised_actual, changed_actual = _normalise(actual, TEXT_NORMALISATIONS)
        if normalised_expected == normalised_actual:
            return IDENTICAL, changed_expected | changed_actual
        return DIFFERS, set()
    same = type(expected) is type(actual) and expected == actual
    return (IDENTICAL if same else DIFFERS), set()


def _is_json_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _worst(results: Iterable[tuple[int, set[str]]]) -> tuple[int, set[str]]:
    severity, rules = IDENTICAL, set()
    for result_severity, result_rules in results:
        severity = max(severity, result_severity)
        rules |= result_rules
        if severity == DIFFERS:
            return DIFFERS, set()
    return severity, rules


def _json_text(value: Any) -> str:
    try:
        return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        return repr(value)[:MAX_COMPARED_CHARS]


def _compare_json(base: dict, expected_value: Any, actual_value: Any, context: _Context) -> _Entry:
    expected, actual = _parse_json_value(expected_value), _parse_json_value(actual_value)
    extra_rules = []
    if base["mime"] == WIDGET_VIEW_MIME and isinstance(expected, dict) and isinstance(actual, dict):
        # The model id is a fresh UUID on every run; the view's other fields (versions) still count.
        if expected.get("model_id") != actual.get("model_id"):
            extra_rules.append(RULE_WIDGET_IDS)
        expected = {key: value for key, value in expected.items() if key != "model_id"}
        actual = {key: value for key, value in actual.items() if key != "model_id"}
    try:
        severity, rules = _compare_json_values(expected, actual, context.tolerance)
    except RecursionError:
        severity, rules = DIFFERS, set()
    ordered_rules = extra_rules + sorted(rules) if severity < DIFFERS else []
    report = {**base, "status": _STATUS[severity], "rules": ordered_rules}
    if severity > IDENTICAL:
        expected_text, actual_text = _json_text(expected), _json_text(actual)
        report.update(expected=_cap(expected_text), actual=_cap(actual_text),
                      diff=_unified_diff(expected_text, actual_text))
    return _Entry(report, severity, ordered_rules)


# --- Outputs -------------------------------------------------------------------------------------------------

@dataclass
class _Context:
    tolerance: Tolerance
    image_budget: _ImageBudget


@dataclass
class _Entry:
    """One line of a cell's output table, with what it means for the cell."""

    report: dict
    severity: int
    rules: list[str] = field(default_factory=list)
    hint: str | None = None


def _as_text(value: Any) -> str:
    """nbformat allows multiline strings as lists of lines; anything else odd is shown as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "".join(value)
    return _json_text(value)


def _text_entry(base: dict, outcome: _TextOutcome, expected_text: str | None, actual_text: str | None) -> _Entry:
    report = {**base, "status": _STATUS[outcome.severity], "rules": outcome.rules}
    if outcome.severity > IDENTICAL:
        report.update(expected=_cap(expected_text), actual=_cap(actual_text))
        if outcome.diff:
            report["diff"] = outcome.diff
    if outcome.note:
        report["note"] = outcome.note
    return _Entry(report, outcome.severity, outcome.rules, outcome.hint)


def _compare_mime(base: dict, expected_value: Any, actual_value: Any, context: _Context) -> _Entry:
    mime = base["mime"]
    tolerance = context.tolerance
    if _is_json_mime(mime):
        return _compare_json(base, expected_value, actual_value, context)
    if mime == "image/svg+xml":
        expected, actual = _as_text(expected_value), _as_text(actual_value)
        outcome = _compare_text(expected, actual, tolerance=tolerance, numeric=True,
                                normalisations=SVG_NORMALISATIONS)
        return _text_entry(base, outcome, expected, actual)
    if mime.startswith("image/"):
        return _compare_image(base, expected_value, actual_value, context)
    if mime == "text/html":
        return _compare_html(base, _as_text(expected_value), _as_text(actual_value), tolerance)
    expected, actual = _as_text(expected_value), _as_text(actual_value)
    outcome = _compare_text(expected, actual, tolerance=tolerance, numeric=mime in NUMERIC_TEXT_MIMES)
    return _text_entry(base, outcome, expected, actual)


def _compare_html(base: dict, expected_html: str, actual_html: str, tolerance: Tolerance) -> _Entry:
    if expected_html == actual_html:
        return _Entry({**base, "status": "identical", "rules": []}, IDENTICAL)
    if max(len(expected_html), len(actual_html)) > MAX_COMPARED_CHARS:
        return _text_entry(base, _compare_by_hash(expected_html, actual_html), None, None)
    expected_text, actual_text = _html_text(expected_html), _html_text(actual_html)
    outcome = _compare_text(expected_text, actual_text, tolerance=tolerance, numeric=True)
    if outcome.severity < DIFFERS:
        outcome.rules = [RULE_HTML_TEXT, *outcome.rules]
    return _text_entry(base, outcome, expected_text, actual_text)


def _output_kind(output: dict) -> str:
    if output.get("output_type") == "stream":
        return f"stream/{output.get('name')}"
    return str(output.get("output_type"))


def _error_text(output: dict) -> str:
    return f"{_as_text(output.get('ename', ''))}: {_as_text(output.get('evalue', ''))}"


def _data_of(output: dict) -> dict:
    data = output.get("data")
    return data if isinstance(data, dict) else {}


def _compare_output_pair(expected: dict, actual: dict, context: _Context) -> list[_Entry]:
    output_type = expected.get("output_type")
    if output_type == "stream":
        base = {"output_type": "stream", "name": expected.get("name"), "mime": "text/plain"}
        outcome = _compare_text(expected["text"], actual["text"], tolerance=context.tolerance, numeric=True)
        return [_text_entry(base, outcome, expected["text"], actual["text"])]
    if output_type == "error":
        return [_compare_errors(expected, actual, context)]
    if output_type in ("execute_result", "display_data"):
        return _compare_data_outputs(expected, actual, context)
    # An output type nbformat 4 does not define: equal or not.
    base = {"output_type": str(output_type), "mime": None}
    same = expected == actual
    return [_Entry({**base, "status": "identical" if same else "differs", "rules": []}, IDENTICAL if same else DIFFERS)]


def _compare_errors(expected: dict, actual: dict, context: _Context) -> _Entry:
    """Name and message only: tracebacks carry paths, line numbers and colour codes."""
    base = {"output_type": "error", "mime": "text/plain"}
    expected_text, actual_text = _error_text(expected), _error_text(actual)
    if _as_text(expected.get("ename", "")) != _as_text(actual.get("ename", "")):
        outcome = _TextOutcome(DIFFERS, diff=_unified_diff(expected_text, actual_text))
    else:
        outcome = _compare_text(expected_text, actual_text, tolerance=context.tolerance, numeric=True)
    return _text_entry(base, outcome, expected_text, actual_text)


def _compare_data_outputs(expected: dict, actual: dict, context: _Context) -> list[_Entry]:
    expected_data, actual_data = _data_of(expected), _data_of(actual)
    output_type = expected.get("output_type")
    if not expected_data:
        return [_Entry({"output_type": output_type, "mime": None, "status": "identical", "rules": []}, IDENTICAL)]
    entries = []
    # Only the MIME types that were stored are checked: a newer library adding a representation is no regression.
    for mime, expected_value in expected_data.items():
        base = {"output_type": output_type, "mime": str(mime)}
        if mime in actual_data:
            entries.append(_compare_mime(base, expected_value, actual_data[mime], context))
        else:
            entries.append(_one_sided_entry(base, expected_value, "missing", context))
    return entries


def _one_sided_entry(base: dict, value: Any, status: str, context: _Context) -> _Entry:
    """An output (or MIME type) present on one side only."""
    report = {**base, "status": status, "rules": []}
    side = "expected" if status == "missing" else "actual"
    mime = base.get("mime") or ""
    if mime.startswith("image/") and mime != "image/svg+xml":
        encoded = _image_for_report(value, context)
        if encoded:
            report[f"{side}_image"] = encoded
    elif mime == "text/html":
        report[side] = _cap(_html_text(_as_text(value)))
    else:
        report[side] = _cap(_json_text(value) if _is_json_mime(mime) else _as_text(value))
    return _Entry(report, DIFFERS)


def _one_sided_output_entries(output: dict, status: str, context: _Context) -> list[_Entry]:
    output_type = output.get("output_type")
    if output_type == "stream":
        base = {"output_type": "stream", "name": output.get("name"), "mime": "text/plain"}
        return [_one_sided_entry(base, output["text"], status, context)]
    if output_type == "error":
        return [_one_sided_entry({"output_type": "error", "mime": "text/plain"}, _error_text(output), status,
                                 context)]
    data = _data_of(output)
    if not data:
        return [_one_sided_entry({"output_type": str(output_type), "mime": None}, "", status, context)]
    return [_one_sided_entry({"output_type": output_type, "mime": str(mime)}, value, status, context)
            for mime, value in data.items()]


def _prepare_outputs(outputs: list) -> tuple[list[dict], str | None]:
    """Split off stderr (one text) and merge consecutive streams of the same name in what remains."""
    merged: list[dict] = []
    stream_parts: dict[int, list[str]] = {}  # position in merged -> texts, joined once (a loop may print 10,000 times)
    stderr_parts: list[str] = []
    for output in outputs:
        if not isinstance(output, dict):
            continue
        if output.get("output_type") != "stream":
            merged.append(output)
            continue
        name, text = output.get("name"), _as_text(output.get("text"))
        if name == "stderr":
            stderr_parts.append(text)
        elif merged and merged[-1].get("output_type") == "stream" and merged[-1].get("name") == name:
            stream_parts[len(merged) - 1].append(text)
        else:
            stream_parts[len(merged)] = [text]
            merged.append({"output_type": "stream", "name": name})
    for position, parts in stream_parts.items():
        merged[position]["text"] = "".join(parts)
    return merged, ("".join(stderr_parts) if stderr_parts else None)


def _compare_stderr(expected: str | None, actual: str | None, context: _Context) -> _Entry:
    """Warnings, logging and progress bars: differences are tolerated, never decisive."""
    base = {"output_type": "stream", "name": "stderr", "mime": "text/plain"}
    outcome = _compare_text(expected or "", actual or "", tolerance=context.tolerance, numeric=True)
    if outcome.severity == DIFFERS:
        outcome = _TextOutcome(WITHIN_TOLERANCE, [RULE_STDERR], diff=outcome.diff, note=outcome.note)
        if expected is None or actual is None:
            outcome.note = f"stderr output only in the {'submitted' if actual is None else 're-executed'} notebook."
    return _text_entry(base, outcome, expected, actual)


@dataclass
class _OutputsComparison:
    entries: list[_Entry]

    @property
    def severity(self) -> int:
        return max((entry.severity for entry in self.entries), default=IDENTICAL)

    @property
    def rules(self) -> list[str]:
        return list(dict.fromkeys(rule for entry in self.entries for rule in entry.rules))

    @property
    def hint(self) -> str | None:
        return next((entry.hint for entry in self.entries if entry.hint), None)


def _compare_outputs(stored: list, fresh: list, context: _Context) -> _OutputsComparison:
    expected_outputs, expected_stderr = _prepare_outputs(stored)
    actual_outputs, actual_stderr = _prepare_outputs(fresh)
    entries: list[_Entry] = []
    # Pair outputs by kind, in order, so one extra or missing output does not shift every later comparison.
    matcher = difflib.SequenceMatcher(None, [_output_kind(o) for o in expected_outputs],
                                      [_output_kind(o) for o in actual_outputs], autojunk=False)
    for operation, expected_start, expected_end, actual_start, actual_end in matcher.get_opcodes():
        if operation == "equal":
            for expected, actual in zip(expected_outputs[expected_start:expected_end],
                                        actual_outputs[actual_start:actual_end]):
                entries.extend(_compare_output_pair(expected, actual, context))
            continue
        for expected in expected_outputs[expected_start:expected_end]:
            entries.extend(_one_sided_output_entries(expected, "missing", context))
        for actual in actual_outputs[actual_start:actual_end]:
            entries.extend(_one_sided_output_entries(actual, "unexpected", context))
    if expected_stderr is not None or actual_stderr is not None:
        entries.append(_compare_stderr(expected_stderr, actual_stderr, context))
    return _OutputsComparison(entries)


# --- Cells ---------------------------------------------------------------------------------------------------

def _cells(notebook: Any) -> list[dict]:
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    return [cell if isinstance(cell, dict) else {} for cell in cells] if isinstance(cells, list) else []


def _outputs(cell: dict) -> list:
    outputs = cell.get("outputs")
    return outputs if isinstance(outputs, list) else []


def _tags(cell: dict) -> list[str]:
    metadata = cell.get("metadata")
    tags = metadata.get("tags") if isinstance(metadata, dict) else None
    return [tag for tag in tags if isinstance(tag, str)] if isinstance(tags, list) else []


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return _as_text(source) if source is not None else ""


def _execution_count(cell: dict) -> int | None:
    count = cell.get("execution_count")
    return count if isinstance(count, int) and not isinstance(count, bool) else None


def _has_error(cell: dict) -> bool:
    return any(isinstance(o, dict) and o.get("output_type") == "error" for o in _outputs(cell))


def _is_code(cell: dict) -> bool:
    return cell.get("cell_type") == "code"


def _stop_index(submitted_cells: list[dict], executed_cells: list[dict]) -> int | None:
    """Position of the first cell whose fresh run raised without being tagged to: nbclient stops there."""
    for index, cell in enumerate(executed_cells):
        tags = set(_tags(cell)) | set(_tags(submitted_cells[index]) if index < len(submitted_cells) else ())
        if _is_code(cell) and _has_error(cell) and not tags & set(RAISES_EXCEPTION_TAGS):
            return index
    return None


def _was_not_reached(index: int, executed_cell: dict, stop_index: int | None) -> bool:
    if not _source(executed_cell).strip() or _outputs(executed_cell):
        return False  # nbclient skips blank cells; a cell with outputs ran
    return _execution_count(executed_cell) is None or (stop_index is not None and index > stop_index)


@dataclass
class _CellResult:
    report: dict
    severity: int  # what the cell means for the verdict


def _cell_base(index: int, cell: dict) -> dict:
    return {"index": index, "cell_id": cell.get("id") if isinstance(cell.get("id"), str) else None,
            "execution_count": _execution_count(cell), "status": None, "tags": _tags(cell),
            "source": _source(cell)[:SOURCE_CHARS], "rules": [], "outputs": []}


def _compare_cell(index: int, submitted_cell: dict, executed_cell: dict | None, stop_index: int | None,
                  context: _Context) -> _CellResult:
    report = _cell_base(index, submitted_cell)
    if executed_cell is None or _was_not_reached(index, executed_cell, stop_index):
        report["status"] = "not_executed"
        return _CellResult(report, DIFFERS)
    if not _is_code(executed_cell):
        report.update(status="differs", hint=f"This position holds a {executed_cell.get('cell_type')} cell in the "
                                             "executed notebook, not a code cell.")
        return _CellResult(report, DIFFERS)

    comparison = _compare_outputs(_outputs(submitted_cell), _outputs(executed_cell), context)
    report["outputs"] = [entry.report for entry in comparison.entries]
    report["rules"] = comparison.rules
    if comparison.hint:
        report["hint"] = comparison.hint
    status, severity = _cell_status(submitted_cell, executed_cell, comparison)
    report["status"] = status
    if status == "skipped":
        report["status_if_compared"] = _STATUS[comparison.severity]
    if status == "differs" and "hint" not in report and _raises_expected(submitted_cell) \
            and not _has_error(executed_cell):
        report["hint"] = "The cell is tagged raises-exception but raised no error in the fresh run."
    return _CellResult(report, severity)


def _raises_expected(cell: dict) -> bool:
    return bool(set(_tags(cell)) & set(RAISES_EXCEPTION_TAGS))


def _cell_status(submitted_cell: dict, executed_cell: dict, comparison: _OutputsComparison) -> tuple[str, int]:
    """The cell's status and what it means for the verdict (skipped and uncheckable cells weigh at most 'with
    differences': nobody claimed their outputs, so they cannot make the notebook not reproduced)."""
    severity = comparison.severity
    raises_expected = _raises_expected(submitted_cell)
    fresh_error = _has_error(executed_cell)
    if set(_tags(submitted_cell)) & set(SKIP_COMPARE_TAGS):
        return "skipped", min(severity, WITHIN_TOLERANCE)
    if raises_expected and not fresh_error:
        return "differs", DIFFERS
    fresh_outputs, _ = _prepare_outputs(_outputs(executed_cell))
    if not _outputs(submitted_cell) and fresh_outputs and (raises_expected or not fresh_error):
        return "no_stored_output", min(severity, WITHIN_TOLERANCE)
    if raises_expected and severity < DIFFERS:
        return "expected_error", severity
    return _STATUS[severity], severity


# --- Notebook ------------------------------------------------------------------------------------------------

def _listed(indices: list[int]) -> str:
    shown = ", ".join(str(index) for index in indices[:MAX_LISTED_CELLS])
    more = len(indices) - MAX_LISTED_CELLS
    return f"{shown} and {more} more" if more > 0 else shown


def _execution_order_note(submitted_cells: list[dict]) -> str | None:
    out_of_order, highest = [], None
    for index, cell in enumerate(submitted_cells):
        count = _execution_count(cell) if _is_code(cell) else None
        if count is None:
            continue
        if highest is not None and count <= highest:
            out_of_order.append(index)
        highest = count if highest is None else max(highest, count)
    if not out_of_order:
        return None
    return (f"Execution counts of the submitted notebook are not in order (cells {_listed(out_of_order)}): "
            "it was not run top to bottom.")


def _notes(submitted_cells: list[dict], executed_cells: list[dict], cell_reports: list[dict],
           stop_index: int | None, context: _Context) -> list[str]:
    notes = []
    if len(submitted_cells) != len(executed_cells):
        notes.append(f"The submitted notebook has {len(submitted_cells)} cells and the executed one "
                     f"{len(executed_cells)}; only the first {min(len(submitted_cells), len(executed_cells))} "
                     "were compared.")
    order_note = _execution_order_note(submitted_cells)
    if order_note:
        notes.append(order_note)
    common = zip(submitted_cells, executed_cells)
    changed_sources = [index for index, (submitted, executed) in enumerate(common)
                       if _is_code(submitted) and _is_code(executed) and _source(submitted) != _source(executed)]
    if changed_sources:
        notes.append(f"The source of cells {_listed(changed_sources)} differs between the submitted and the executed "
                     "notebook; were they run from the same file?")
    by_status: dict[str, list[int]] = {}
    for cell in cell_reports:
        by_status.setdefault(cell["status"], []).append(cell["index"])
    if cell_reports and not any(_outputs(cell) for cell in submitted_cells if _is_code(cell)):
        notes.append("The submitted notebook has no stored outputs: there is nothing to compare the fresh outputs "
                     "with.")
    elif by_status.get("no_stored_output"):
        notes.append(f"Cells {_listed(by_status['no_stored_output'])} have no stored outputs in the submitted "
                     "notebook (never run, or outputs cleared), so their fresh outputs could not be checked.")
    if by_status.get("not_executed"):
        where = f"Execution stopped at cell {stop_index} with an error; cells" if stop_index is not None else "Cells"
        notes.append(f"{where} {_listed(by_status['not_executed'])} were not executed in the fresh run.")
    if by_status.get("skipped"):
        skipped = [cell for cell in cell_reports if cell["status"] == "skipped"]
        differing = [cell["index"] for cell in skipped if cell.get("status_if_compared") != "identical"]
        note = (f"Cells {_listed(by_status['skipped'])} are tagged to skip comparison "
                f"({' or '.join(SKIP_COMPARE_TAGS)}); they are listed but cannot make the notebook not reproduced.")
        if differing:
            note += f" The outputs of cells {_listed(differing)} differ."
        notes.append(note)
    if by_status.get("expected_error"):
        notes.append(f"Cells {_listed(by_status['expected_error'])} are tagged raises-exception and raised an error, "
                     "as expected.")
    if context.image_budget.exhausted:
        notes.append("Some images were left out of this report to keep it small.")
    return notes


_SUMMARY_KEYS = {"identical": "identical", "within_tolerance": "within_tolerance", "differs": "differ",
                 "skipped": "skipped", "expected_error": "expected_errors", "no_stored_output": "no_stored_output",
                 "not_executed": "not_executed"}


def _summary(cell_reports: list[dict]) -> dict:
    summary = {"code_cells": len(cell_reports), **{key: 0 for key in _SUMMARY_KEYS.values()}}
    for cell in cell_reports:
        summary[_SUMMARY_KEYS[cell["status"]]] += 1
    return summary


def compare_notebooks(submitted: dict, executed: dict, *, tolerance: Tolerance) -> dict:
    """Return the report as a JSON-serialisable dict (see the module docstring). Never raises on odd-but-valid
    notebooks."""
    submitted_cells, executed_cells = _cells(submitted), _cells(executed)
    context = _Context(tolerance=tolerance, image_budget=_ImageBudget(REPORT_IMAGE_BUDGET_CHARS))
    stop_index = _stop_index(submitted_cells, executed_cells)
    results = [
        _compare_cell(index, cell, executed_cells[index] if index < len(executed_cells) else None, stop_index,
                      context)
        for index, cell in enumerate(submitted_cells) if _is_code(cell)
    ]
    cell_reports = [result.report for result in results]
    return {
        "verdict": _VERDICT[max((result.severity for result in results), default=IDENTICAL)],
        "tolerance": tolerance.as_dict(),
        "summary": _summary(cell_reports),
        "notes": _notes(submitted_cells, executed_cells, cell_reports, stop_index, context),
        "cells": cell_reports,
    }
