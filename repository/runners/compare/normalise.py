"""Text normalisations: the parts of an output text that change on every honest run, set aside before comparing.

``normalise(text, normalisations)`` applies the normalisations in order and returns the normalised text with the
rules (names from rules.py) that changed it; it never raises. ``TEXT_NORMALISATIONS`` is the list for every text
(streams, text/plain, text/markdown, text/latex, the text of text/html, error messages, strings in JSON);
``SVG_NORMALISATIONS`` adds renaming the random SVG ids. Each normalisation recognises only shapes that cannot
be data (a bare "12:30" or "2024" stays compared), and each is a harmless rule: a text that matches only after
normalisation is still "identical". Sets and dicts are put in one order by literals.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from repository.runners.compare.literals import sort_unordered_collections
from repository.runners.compare.rules import (
    RULE_ADDRESSES,
    RULE_ANSI,
    RULE_CARRIAGE_RETURNS,
    RULE_INSTALL_PATHS,
    RULE_LINE_ENDINGS,
    RULE_PROGRESS,
    RULE_SVG_IDS,
    RULE_TEMP_PATHS,
    RULE_TIMESTAMPS,
    RULE_TIMINGS,
    RULE_TRAILING_WHITESPACE,
    RULE_UNORDERED_COLLECTIONS,
)

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
class Normalisation:
    rule: str
    apply: Callable[[str], str]


# Order matters: line endings before carriage returns, ANSI codes before trailing whitespace, progress and
# timing shapes before the clock times inside them, sets and dicts while the datetimes in them still parse.
TEXT_NORMALISATIONS = (
    Normalisation(RULE_LINE_ENDINGS, _unify_line_endings),
    Normalisation(RULE_ANSI, _strip_ansi),
    Normalisation(RULE_CARRIAGE_RETURNS, _apply_carriage_returns),
    Normalisation(RULE_PROGRESS, _normalise_progress),
    Normalisation(RULE_TIMINGS, _normalise_timings),
    Normalisation(RULE_ADDRESSES, _normalise_addresses),
    Normalisation(RULE_TEMP_PATHS, _normalise_temp_paths),
    Normalisation(RULE_INSTALL_PATHS, _normalise_install_paths),
    Normalisation(RULE_UNORDERED_COLLECTIONS, sort_unordered_collections),
    Normalisation(RULE_TIMESTAMPS, _normalise_timestamps),
    Normalisation(RULE_TRAILING_WHITESPACE, _strip_trailing_whitespace),
)
SVG_NORMALISATIONS = (Normalisation(RULE_SVG_IDS, _normalise_svg_ids), *TEXT_NORMALISATIONS)


def normalise(text: str, normalisations: Iterable[Normalisation]) -> tuple[str, set[str]]:
    """Return the normalised text and the rules that changed it."""
    changed = set()
    for normalisation in normalisations:
        normalised = normalisation.apply(text)
        if normalised != text:
            changed.add(normalisation.rule)
        text = normalised
    return text, changed

