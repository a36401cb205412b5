"""Texts compared with rules: normalise both sides, match them (numbers within tolerance where the MIME type may
carry numbers), and name only the rules that were needed.

``compare_text`` returns a ``TextOutcome``: identical, within tolerance (with a diff of the normalised texts) or
differs (with a diff and, for numbers, a hint). Texts over ``limits.MAX_COMPARED_CHARS`` are compared by
SHA-256 of the raw text instead, as the outcome's note says. HTML is compared by the text a reader sees
(``html_text``), which adds the harmless "HTML compared by its text" rule. Nothing here raises on odd input.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from html.parser import HTMLParser

from repository.runners.compare import limits
from repository.runners.compare.normalise import TEXT_NORMALISATIONS, Normalisation, normalise
from repository.runners.compare.numeric import Tolerance, match_normalised
from repository.runners.compare.report import Entry, TextOutcome, text_entry, unified_diff
from repository.runners.compare.rules import DIFFERS, IDENTICAL, RULE_HTML_TEXT, WITHIN_TOLERANCE


def compare_text(expected: str, actual: str, *, tolerance: Tolerance, numeric: bool,
                 normalisations: tuple[Normalisation, ...] = TEXT_NORMALISATIONS) -> TextOutcome:
    if expected == actual:
        return TextOutcome(IDENTICAL)
    if max(len(expected), len(actual)) > limits.MAX_COMPARED_CHARS:
        return compare_by_hash(expected, actual)
    normalised_expected, changed_expected = normalise(expected, normalisations)
    normalised_actual, changed_actual = normalise(actual, normalisations)
    match = match_normalised(normalised_expected, normalised_actual, numeric=numeric, tolerance=tolerance)
    if match.severity == DIFFERS:
        return TextOutcome(DIFFERS, hint=match.hint, diff=unified_diff(normalised_expected, normalised_actual))
    candidates = [n for n in normalisations if n.rule in changed_expected | changed_actual]
    needed = _needed_normalisations(expected, actual, candidates, normalisations, match.severity,
                                    numeric=numeric, tolerance=tolerance)
    diff = unified_diff(normalised_expected, normalised_actual) if match.severity == WITHIN_TOLERANCE else None
    return TextOutcome(match.severity, needed + match.rules, diff=diff)


def _needed_normalisations(expected: str, actual: str, candidates: list[Normalisation],
                           normalisations: tuple[Normalisation, ...], severity: int, *,
                           numeric: bool, tolerance: Tolerance) -> list[str]:
    """The rules without which the outputs would match worse, so a moderator is not told about no-op rules."""
    if len(expected) + len(actual) > limits.LEAVE_ONE_OUT_CHARS:
        return [candidate.rule for candidate in candidates]
    needed = []
    for candidate in candidates:
        others = [n for n in normalisations if n is not candidate]
        without = match_normalised(normalise(expected, others)[0], normalise(actual, others)[0],
                                   numeric=numeric, tolerance=tolerance)
        if without.severity > severity:
            needed.append(candidate.rule)
    if needed:
        return needed
    # Two rules that each suffice alone are both "not needed": name them, but only if the candidates together
    # were needed at all (a rule that changed both texts alike, a dict already in the same order, was not).
    others = [n for n in normalisations if n not in candidates]
    without_any = match_normalised(normalise(expected, others)[0], normalise(actual, others)[0],
                                   numeric=numeric, tolerance=tolerance)
    return [candidate.rule for candidate in candidates] if without_any.severity > severity else []


def compare_by_hash(expected: str, actual: str) -> TextOutcome:
    expected_digest = hashlib.sha256(expected.encode("utf-8", "surrogatepass")).hexdigest()
    actual_digest = hashlib.sha256(actual.encode("utf-8", "surrogatepass")).hexdigest()
    severity = IDENTICAL if expected_digest == actual_digest else DIFFERS
    note = (f"Output larger than {limits.MAX_COMPARED_CHARS:,} characters: compared by SHA-256 of the raw text "
            f"without normalisation (submitted {expected_digest}, re-executed {actual_digest}).")
    return TextOutcome(severity, note=note)


# --- HTML ----------------------------------------------------------------------------------------------------

def compare_html(base: dict, expected_html: str, actual_html: str, tolerance: Tolerance) -> Entry:
    if expected_html == actual_html:
        return Entry({**base, "status": "identical", "rules": []}, IDENTICAL)
    if max(len(expected_html), len(actual_html)) > limits.MAX_COMPARED_CHARS:
        return text_entry(base, compare_by_hash(expected_html, actual_html), None, None)
    expected_text, actual_text = html_text(expected_html), html_text(actual_html)
    outcome = compare_text(expected_text, actual_text, tolerance=tolerance, numeric=True)
    if outcome.severity < DIFFERS:
        outcome.rules = [RULE_HTML_TEXT, *outcome.rules]
    return text_entry(base, outcome, expected_text, actual_text)


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


def html_text(html: str) -> str:
    extractor = _HTMLTextExtractor()
    # Untrusted markup: if the parser gives up, what it parsed so far is still the best text we have.
    with contextlib.suppress(Exception):
        extractor.feed(html)
        extractor.close()
    lines = (re.sub(r"[ \t\xa0]+", " ", line).strip() for line in "".join(extractor.parts).split("\n"))
    return "\n".join(line for line in lines if line)
