"""The pieces of the report that every comparer builds, and the caps that keep its texts small.

An ``Entry`` is one line of a cell's output table (the JSON-ready ``report`` dict) with what it means for the
cell (severity, rules, hint). Every comparer gets a ``Context``: the ``Tolerance``, the report's
``ImageBudget`` (base64 pictures shown) and its ``PixelBudget`` (pixels decoded). ``as_text`` turns the forms
nbformat allows (a string, a list of lines, odd JSON) into one string; ``cap`` and ``unified_diff`` keep texts and
diffs within ``limits``. Nothing here raises on odd input.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any

from repository.runners.compare import limits
from repository.runners.compare.numeric import Tolerance
from repository.runners.compare.rules import IDENTICAL, STATUS


class ImageBudget:
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


class PixelBudget:
    """Bounds the time and memory images cost the worker: each decoded image has at most ``per_image`` pixels
    (checked from the header, before decoding) and one report decodes at most ``total`` pixels."""

    def __init__(self, per_image: int, total: int):
        if isinstance(per_image, bool) or not isinstance(per_image, int) or per_image < 1:
            raise ValueError(f"The pixel budget per image must be a whole number of at least 1, not {per_image!r}.")
        self.per_image = per_image
        self.total = total
        self.remaining = total

    def take(self, pixels: int) -> bool:
        if pixels > self.remaining:
            return False
        self.remaining -= pixels
        return True


@dataclass
class Context:
    tolerance: Tolerance
    image_budget: ImageBudget
    pixel_budget: PixelBudget = field(
        default_factory=lambda: PixelBudget(limits.MAX_IMAGE_PIXELS, limits.MAX_REPORT_IMAGE_PIXELS))


@dataclass
class Entry:
    """One line of a cell's output table, with what it means for the cell."""

    report: dict
    severity: int
    rules: list[str] = field(default_factory=list)
    hint: str | None = None


@dataclass
class TextOutcome:
    severity: int
    rules: list[str] = field(default_factory=list)
    hint: str | None = None
    diff: str | None = None
    note: str | None = None


def text_entry(base: dict, outcome: TextOutcome, expected_text: str | None, actual_text: str | None) -> Entry:
    report = {**base, "status": STATUS[outcome.severity], "rules": outcome.rules}
    if outcome.severity > IDENTICAL:
        report.update(expected=cap(expected_text), actual=cap(actual_text))
        if outcome.diff:
            report["diff"] = outcome.diff
    if outcome.note:
        report["note"] = outcome.note
    return Entry(report, outcome.severity, outcome.rules, outcome.hint)


def as_text(value: Any) -> str:
    """nbformat allows multiline strings as lists of lines; anything else odd is shown as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "".join(value)
    return json_text(value)


def json_text(value: Any) -> str:
    try:
        return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        return repr(value)[:limits.MAX_COMPARED_CHARS]


def unified_diff(expected: str, actual: str) -> str:
    """A unified diff of at most DIFF_INPUT_LINES lines, starting just before the first differing line."""
    expected_lines, actual_lines = expected.split("\n"), actual.split("\n")
    first_difference = next((number for number, (e, a) in enumerate(zip(expected_lines, actual_lines,
                                                                        strict=False)) if e != a),
                            min(len(expected_lines), len(actual_lines)))
    start = max(0, first_difference - 3)
    end = start + limits.DIFF_INPUT_LINES
    diff = "\n".join(difflib.unified_diff(
        expected_lines[start:end], actual_lines[start:end], lineterm="",
        fromfile="submitted" + (f" (from line {start + 1})" if start else ""),
        tofile="re-executed" + (f" (from line {start + 1})" if start else "")))
    if max(len(expected_lines), len(actual_lines)) > end:
        diff += f"\n… [only lines {start + 1:,} to {end:,} were diffed]"
    return cap(diff)


def cap(text: str | None) -> str | None:
    limit = limits.REPORT_TEXT_CHARS
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"\n… [cut: {len(text):,} characters in all]"
