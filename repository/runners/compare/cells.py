"""One code cell: its outputs compared, and what its status means for the notebook's verdict.

``compare_cell`` returns a ``CellResult``: the cell's report entry (index, id, execution count, status, tags,
source cut to ``limits.SOURCE_CHARS``, rules, hint, outputs) and its severity for the verdict. Cells are matched
by position. A cell "differs" when an output differs beyond tolerance, a stored output is missing, a new output
other than stderr appears (also in a cell that ran, having an execution count, and stored no output), an error
appears, or a ``raises-exception`` cell raised nothing. Cells tagged ``nbarchive-skip-compare``/
``nbval-ignore-output`` are still compared but listed as "skipped" and weigh at most "with differences"; so do
cells that never ran in the submitted notebook (no outputs, no execution count) and produce output now
("no_stored_output"): nothing was claimed for them. A cell that
nbclient never reached (no outputs and no execution count, or after the cell where execution stopped on an
error) is "not_executed" and counts as differing. The accessors here read cells defensively: a malformed
notebook gives empty lists, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from repository.runners.compare import limits
from repository.runners.compare.outputs import OutputsComparison, compare_outputs, prepare_outputs
from repository.runners.compare.report import Context, as_text
from repository.runners.compare.rules import DIFFERS, STATUS, WITHIN_TOLERANCE

SKIP_COMPARE_TAGS = ("nbarchive-skip-compare", "nbval-ignore-output")
RAISES_EXCEPTION_TAGS = ("raises-exception", "nbval-raises-exception")


def notebook_cells(notebook: Any) -> list[dict]:
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    return [cell if isinstance(cell, dict) else {} for cell in cells] if isinstance(cells, list) else []


def cell_outputs(cell: dict) -> list:
    outputs = cell.get("outputs")
    return outputs if isinstance(outputs, list) else []


def cell_tags(cell: dict) -> list[str]:
    metadata = cell.get("metadata")
    tags = metadata.get("tags") if isinstance(metadata, dict) else None
    return [tag for tag in tags if isinstance(tag, str)] if isinstance(tags, list) else []


def cell_source(cell: dict) -> str:
    source = cell.get("source", "")
    return as_text(source) if source is not None else ""


def execution_count(cell: dict) -> int | None:
    count = cell.get("execution_count")
    return count if isinstance(count, int) and not isinstance(count, bool) else None


def has_error(cell: dict) -> bool:
    return any(isinstance(o, dict) and o.get("output_type") == "error" for o in cell_outputs(cell))


def is_code(cell: dict) -> bool:
    return cell.get("cell_type") == "code"


def where_execution_stopped(submitted_cells: list[dict], executed_cells: list[dict]) -> int | None:
    """Position of the first cell whose fresh run raised without being tagged to: nbclient stops there."""
    for index, cell in enumerate(executed_cells):
        tags = set(cell_tags(cell)) | set(cell_tags(submitted_cells[index]) if index < len(submitted_cells) else ())
        if is_code(cell) and has_error(cell) and not tags & set(RAISES_EXCEPTION_TAGS):
            return index
    return None


def _was_not_reached(index: int, executed_cell: dict, stop_index: int | None) -> bool:
    if not cell_source(executed_cell).strip() or cell_outputs(executed_cell):
        return False  # nbclient skips blank cells; a cell with outputs ran
    return execution_count(executed_cell) is None or (stop_index is not None and index > stop_index)


@dataclass
class CellResult:
    report: dict
    severity: int  # what the cell means for the verdict


def _cell_base(index: int, cell: dict) -> dict:
    return {"index": index, "cell_id": cell.get("id") if isinstance(cell.get("id"), str) else None,
            "execution_count": execution_count(cell), "status": None, "tags": cell_tags(cell),
            "source": cell_source(cell)[:limits.SOURCE_CHARS], "rules": [], "outputs": []}


def compare_cell(index: int, submitted_cell: dict, executed_cell: dict | None, stop_index: int | None,
                 context: Context) -> CellResult:
    report = _cell_base(index, submitted_cell)
    if executed_cell is None or _was_not_reached(index, executed_cell, stop_index):
        report["status"] = "not_executed"
        return CellResult(report, DIFFERS)
    if not is_code(executed_cell):
        report.update(status="differs", hint=f"This position holds a {executed_cell.get('cell_type')} cell in the "
                                             "executed notebook, not a code cell.")
        return CellResult(report, DIFFERS)

    comparison = compare_outputs(cell_outputs(submitted_cell), cell_outputs(executed_cell), context)
    report["outputs"] = [entry.report for entry in comparison.entries]
    report["rules"] = comparison.rules
    if comparison.hint:
        report["hint"] = comparison.hint
    status, severity = _cell_status(submitted_cell, executed_cell, comparison)
    report["status"] = status
    if status == "skipped":
        report["status_if_compared"] = STATUS[comparison.severity]
    if status == "differs" and "hint" not in report:
        hint = _differs_hint(submitted_cell, executed_cell)
        if hint:
            report["hint"] = hint
    return CellResult(report, severity)


def ran_without_output(cell: dict) -> bool:
    """The submitted cell ran (it has an execution count) and stored no output: it claims to print nothing."""
    return execution_count(cell) is not None and not cell_outputs(cell)


def _differs_hint(submitted_cell: dict, executed_cell: dict) -> str | None:
    if _raises_expected(submitted_cell) and not has_error(executed_cell):
        return "The cell is tagged raises-exception but raised no error in the fresh run."
    if ran_without_output(submitted_cell):
        return (f"The submitted cell ran (execution count {execution_count(submitted_cell)}) and stored no output, "
                "but the fresh run produced output: what it shows now was not in the submitted notebook.")
    return None


def _raises_expected(cell: dict) -> bool:
    return bool(set(cell_tags(cell)) & set(RAISES_EXCEPTION_TAGS))


def _cell_status(submitted_cell: dict, executed_cell: dict, comparison: OutputsComparison) -> tuple[str, int]:
    """The cell's status and what it means for the verdict (skipped and uncheckable cells weigh at most 'with
    differences': nobody claimed their outputs, so they cannot make the notebook not reproduced)."""
    severity = comparison.severity
    raises_expected = _raises_expected(submitted_cell)
    fresh_error = has_error(executed_cell)
    if set(cell_tags(submitted_cell)) & set(SKIP_COMPARE_TAGS):
        return "skipped", min(severity, WITHIN_TOLERANCE)
    if raises_expected and not fresh_error:
        return "differs", DIFFERS
    fresh_outputs, _ = prepare_outputs(cell_outputs(executed_cell))
    if not cell_outputs(submitted_cell) and fresh_outputs and (raises_expected or not fresh_error) \
            and execution_count(submitted_cell) is None:
        return "no_stored_output", min(severity, WITHIN_TOLERANCE)
    if raises_expected and severity < DIFFERS:
        return "expected_error", severity
    return STATUS[severity], severity

