"""The outputs of one cell: paired up, then compared by output type and MIME type.

``compare_outputs(stored, fresh, context)`` returns an ``OutputsComparison`` (one ``Entry`` per stored output and
MIME type, and the worst severity, all rules and the first hint of them). stderr is taken out of the sequence
(its interleaving with stdout is not stable) and compared as one text whose differences are only ever tolerated
("stderr differences"); the remaining consecutive streams of the same name are concatenated, because kernels
split them arbitrarily (``prepare_outputs``). Outputs are then paired by kind in order (difflib), so one extra
output does not shift the rest; an output on one side only is "missing" or "unexpected". Errors compare their
name and normalised message, never the traceback. Only the MIME types that were stored are compared: JSON
(structured.py), SVG as text, other images (images.py), HTML by its text, text/plain, text/markdown and
text/latex with numbers within tolerance, and any other type after the text normalisations.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from repository.runners.compare.images import compare_image, image_for_report
from repository.runners.compare.normalise import SVG_NORMALISATIONS
from repository.runners.compare.report import (
    Context,
    Entry,
    TextOutcome,
    as_text,
    cap,
    json_text,
    text_entry,
    unified_diff,
)
from repository.runners.compare.rules import DIFFERS, IDENTICAL, RULE_STDERR, WITHIN_TOLERANCE
from repository.runners.compare.structured import compare_json, is_json_mime
from repository.runners.compare.text import compare_html, compare_text, html_text

# MIME types whose text may carry computed numbers; others must match exactly after normalisation.
NUMERIC_TEXT_MIMES = frozenset({"text/plain", "text/markdown", "text/latex"})


def _compare_mime(base: dict, expected_value: Any, actual_value: Any, context: Context) -> Entry:
    mime = base["mime"]
    tolerance = context.tolerance
    if is_json_mime(mime):
        return compare_json(base, expected_value, actual_value, context)
    if mime == "image/svg+xml":
        expected, actual = as_text(expected_value), as_text(actual_value)
        outcome = compare_text(expected, actual, tolerance=tolerance, numeric=True,
                               normalisations=SVG_NORMALISATIONS)
        return text_entry(base, outcome, expected, actual)
    if mime.startswith("image/"):
        return compare_image(base, expected_value, actual_value, context)
    if mime == "text/html":
        return compare_html(base, as_text(expected_value), as_text(actual_value), tolerance)
    expected, actual = as_text(expected_value), as_text(actual_value)
    outcome = compare_text(expected, actual, tolerance=tolerance, numeric=mime in NUMERIC_TEXT_MIMES)
    return text_entry(base, outcome, expected, actual)


def _output_kind(output: dict) -> str:
    if output.get("output_type") == "stream":
        return f"stream/{output.get('name')}"
    return str(output.get("output_type"))


def _error_text(output: dict) -> str:
    return f"{as_text(output.get('ename', ''))}: {as_text(output.get('evalue', ''))}"


def _data_of(output: dict) -> dict:
    data = output.get("data")
    return data if isinstance(data, dict) else {}


def _compare_output_pair(expected: dict, actual: dict, context: Context) -> list[Entry]:
    output_type = expected.get("output_type")
    if output_type == "stream":
        base = {"output_type": "stream", "name": expected.get("name"), "mime": "text/plain"}
        outcome = compare_text(expected["text"], actual["text"], tolerance=context.tolerance, numeric=True)
        return [text_entry(base, outcome, expected["text"], actual["text"])]
    if output_type == "error":
        return [_compare_errors(expected, actual, context)]
    if output_type in ("execute_result", "display_data"):
        return _compare_data_outputs(expected, actual, context)
    # An output type nbformat 4 does not define: equal or not.
    base = {"output_type": str(output_type), "mime": None}
    same = expected == actual
    return [Entry({**base, "status": "identical" if same else "differs", "rules": []}, IDENTICAL if same else DIFFERS)]


def _compare_errors(expected: dict, actual: dict, context: Context) -> Entry:
    """Name and message only: tracebacks carry paths, line numbers and colour codes."""
    base = {"output_type": "error", "mime": "text/plain"}
    expected_text, actual_text = _error_text(expected), _error_text(actual)
    if as_text(expected.get("ename", "")) != as_text(actual.get("ename", "")):
        outcome = TextOutcome(DIFFERS, diff=unified_diff(expected_text, actual_text))
    else:
        outcome = compare_text(expected_text, actual_text, tolerance=context.tolerance, numeric=True)
    return text_entry(base, outcome, expected_text, actual_text)


def _compare_data_outputs(expected: dict, actual: dict, context: Context) -> list[Entry]:
    expected_data, actual_data = _data_of(expected), _data_of(actual)
    output_type = expected.get("output_type")
    if not expected_data:
        return [Entry({"output_type": output_type, "mime": None, "status": "identical", "rules": []}, IDENTICAL)]
    entries = []
    # Only the MIME types that were stored are checked: a newer library adding a representation is no regression.
    for mime, expected_value in expected_data.items():
        base = {"output_type": output_type, "mime": str(mime)}
        if mime in actual_data:
            entries.append(_compare_mime(base, expected_value, actual_data[mime], context))
        else:
            entries.append(_one_sided_entry(base, expected_value, "missing", context))
    return entries


def _one_sided_entry(base: dict, value: Any, status: str, context: Context) -> Entry:
    """An output (or MIME type) present on one side only."""
    report = {**base, "status": status, "rules": []}
    side = "expected" if status == "missing" else "actual"
    mime = base.get("mime") or ""
    if mime.startswith("image/") and mime != "image/svg+xml":
        encoded = image_for_report(value, "submitted" if status == "missing" else "re-executed", context)
        if encoded:
            report[f"{side}_image"] = encoded
    elif mime == "text/html":
        report[side] = cap(html_text(as_text(value)))
    else:
        report[side] = cap(json_text(value) if is_json_mime(mime) else as_text(value))
    return Entry(report, DIFFERS)


def _one_sided_output_entries(output: dict, status: str, context: Context) -> list[Entry]:
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


def prepare_outputs(outputs: list) -> tuple[list[dict], str | None]:
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
        name, text = output.get("name"), as_text(output.get("text"))
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


def _compare_stderr(expected: str | None, actual: str | None, context: Context) -> Entry:
    """Warnings, logging and progress bars: differences are tolerated, never decisive."""
    base = {"output_type": "stream", "name": "stderr", "mime": "text/plain"}
    outcome = compare_text(expected or "", actual or "", tolerance=context.tolerance, numeric=True)
    if outcome.severity == DIFFERS:
        outcome = TextOutcome(WITHIN_TOLERANCE, [RULE_STDERR], diff=outcome.diff, note=outcome.note)
        if expected is None or actual is None:
            outcome.note = f"stderr output only in the {'submitted' if actual is None else 're-executed'} notebook."
    return text_entry(base, outcome, expected, actual)


@dataclass
class OutputsComparison:
    entries: list[Entry]

    @property
    def severity(self) -> int:
        return max((entry.severity for entry in self.entries), default=IDENTICAL)

    @property
    def rules(self) -> list[str]:
        return list(dict.fromkeys(rule for entry in self.entries for rule in entry.rules))

    @property
    def hint(self) -> str | None:
        return next((entry.hint for entry in self.entries if entry.hint), None)


def compare_outputs(stored: list, fresh: list, context: Context) -> OutputsComparison:
    expected_outputs, expected_stderr = prepare_outputs(stored)
    actual_outputs, actual_stderr = prepare_outputs(fresh)
    entries: list[Entry] = []
    # Pair outputs by kind, in order, so one extra or missing output does not shift every later comparison.
    matcher = difflib.SequenceMatcher(None, [_output_kind(o) for o in expected_outputs],
                                      [_output_kind(o) for o in actual_outputs], autojunk=False)
    for operation, expected_start, expected_end, actual_start, actual_end in matcher.get_opcodes():
        if operation == "equal":
            for expected, actual in zip(expected_outputs[expected_start:expected_end],
                                        actual_outputs[actual_start:actual_end], strict=False):
                entries.extend(_compare_output_pair(expected, actual, context))
            continue
        for expected in expected_outputs[expected_start:expected_end]:
            entries.extend(_one_sided_output_entries(expected, "missing", context))
        for actual in actual_outputs[actual_start:actual_end]:
            entries.extend(_one_sided_output_entries(actual, "unexpected", context))
    if expected_stderr is not None or actual_stderr is not None:
        entries.append(_compare_stderr(expected_stderr, actual_stderr, context))
    return OutputsComparison(entries)

