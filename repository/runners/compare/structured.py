"""JSON MIME types (application/json and every ``+json`` type): parsed and compared structurally.

``compare_json`` returns an ``Entry``. Objects must have the same keys and lists the same length; integers must be
equal, other numbers agree within the ``Tolerance`` ("numbers within tolerance"), strings are equal after the text
normalisations (their rules are harmless), anything else must be equal and of the same type. Widget views are
compared without their ``model_id``, a fresh UUID on every run ("widget model ids"). Values nested too deeply to
compare "differ"; nothing here raises.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from repository.runners.compare.normalise import TEXT_NORMALISATIONS, normalise
from repository.runners.compare.numeric import Tolerance
from repository.runners.compare.report import Context, Entry, cap, json_text, unified_diff
from repository.runners.compare.rules import (
    DIFFERS,
    IDENTICAL,
    RULE_NUMBERS,
    RULE_WIDGET_IDS,
    STATUS,
    WITHIN_TOLERANCE,
)

WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"


def is_json_mime(mime: str) -> bool:
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
        return _worst(_compare_json_values(e, a, tolerance) for e, a in zip(expected, actual, strict=False))
    if _is_json_number(expected) and _is_json_number(actual):
        if expected == actual:
            return IDENTICAL, set()
        if isinstance(expected, int) and isinstance(actual, int):
            return DIFFERS, set()
        close = math.isclose(expected, actual, rel_tol=tolerance.rtol, abs_tol=tolerance.atol)
        return (WITHIN_TOLERANCE, {RULE_NUMBERS}) if close else (DIFFERS, set())
    if isinstance(expected, str) and isinstance(actual, str) and expected != actual:
        normalised_expected, changed_expected = normalise(expected, TEXT_NORMALISATIONS)
        normalised_actual, changed_actual = normalise(actual, TEXT_NORMALISATIONS)
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


def compare_json(base: dict, expected_value: Any, actual_value: Any, context: Context) -> Entry:
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
    report = {**base, "status": STATUS[severity], "rules": ordered_rules}
    if severity > IDENTICAL:
        expected_text, actual_text = json_text(expected), json_text(actual)
        report.update(expected=cap(expected_text), actual=cap(actual_text),
                      diff=unified_diff(expected_text, actual_text))
    return Entry(report, severity, ordered_rules)

