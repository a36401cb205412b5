"""The whole notebook: ``compare_notebooks``, its verdict, the summary of cell statuses and the notes.

``compare_notebooks(submitted, executed, tolerance=...)`` compares every code cell (cells.py) and returns the
report described in the package docstring. The verdict is the worst cell severity: "reproduced" if every code
cell is identical, "not_reproduced" if any cell differs, else "reproduced_with_differences". The notes tell a
moderator what the cells alone do not: cell counts that differ, execution counts out of order, sources that
changed, outputs that were never stored, cells that ran without output and print now, where execution stopped,
skipped cells, expected errors, images too large to compare, and images left out of the report. Pure: no
settings, no database, and it never raises on odd-but-valid notebooks.
"""

from __future__ import annotations

from repository.runners.compare import limits
from repository.runners.compare.cells import (
    SKIP_COMPARE_TAGS,
    cell_outputs,
    cell_source,
    compare_cell,
    execution_count,
    is_code,
    notebook_cells,
    ran_without_output,
    where_execution_stopped,
)
from repository.runners.compare.numeric import Tolerance
from repository.runners.compare.report import Context, ImageBudget, PixelBudget
from repository.runners.compare.rules import DIFFERS, IDENTICAL, WITHIN_TOLERANCE

_VERDICT = {IDENTICAL: "reproduced", WITHIN_TOLERANCE: "reproduced_with_differences", DIFFERS: "not_reproduced"}


def _listed(indices: list[int]) -> str:
    shown = ", ".join(str(index) for index in indices[:limits.MAX_LISTED_CELLS])
    more = len(indices) - limits.MAX_LISTED_CELLS
    return f"{shown} and {more} more" if more > 0 else shown


def _execution_order_note(submitted_cells: list[dict]) -> str | None:
    out_of_order, highest = [], None
    for index, cell in enumerate(submitted_cells):
        count = execution_count(cell) if is_code(cell) else None
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
           stop_index: int | None, context: Context) -> list[str]:
    notes = []
    if len(submitted_cells) != len(executed_cells):
        notes.append(f"The submitted notebook has {len(submitted_cells)} cells and the executed one "
                     f"{len(executed_cells)}; only the first {min(len(submitted_cells), len(executed_cells))} "
                     "were compared.")
    order_note = _execution_order_note(submitted_cells)
    if order_note:
        notes.append(order_note)
    common = zip(submitted_cells, executed_cells, strict=False)
    changed_sources = [index for index, (submitted, executed) in enumerate(common)
                       if is_code(submitted) and is_code(executed)
                       and cell_source(submitted) != cell_source(executed)]
    if changed_sources:
        notes.append(f"The source of cells {_listed(changed_sources)} differs between the submitted and the executed "
                     "notebook; were they run from the same file?")
    by_status: dict[str, list[int]] = {}
    for cell in cell_reports:
        by_status.setdefault(cell["status"], []).append(cell["index"])
    if by_status.get("no_stored_output"):
        if not any(cell_outputs(cell) for cell in submitted_cells if is_code(cell)):
            notes.append("The submitted notebook has no stored outputs: there is nothing to compare the fresh "
                         "outputs with.")
        else:
            notes.append(f"Cells {_listed(by_status['no_stored_output'])} have no stored outputs in the submitted "
                         "notebook (never run, or outputs cleared), so their fresh outputs could not be checked.")
    silent = [cell["index"] for cell in cell_reports
              if cell["status"] == "differs" and ran_without_output(submitted_cells[cell["index"]])]
    if silent:
        notes.append(f"Cells {_listed(silent)} ran in the submitted notebook (they have execution counts) but stored "
                     "no output, and the fresh run produced some: they differ.")
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
    too_large = [cell["index"] for cell in cell_reports if any(o.get("too_large") for o in cell["outputs"])]
    if too_large:
        notes.append(f"Images of cells {_listed(too_large)} were too large to compare pixel by pixel; they count as "
                     "reproduced only where their bytes are identical.")
    return notes


_SUMMARY_KEYS = {"identical": "identical", "within_tolerance": "within_tolerance", "differs": "differ",
                 "skipped": "skipped", "expected_error": "expected_errors", "no_stored_output": "no_stored_output",
                 "not_executed": "not_executed"}


def _summary(cell_reports: list[dict]) -> dict:
    summary = {"code_cells": len(cell_reports), **{key: 0 for key in _SUMMARY_KEYS.values()}}
    for cell in cell_reports:
        summary[_SUMMARY_KEYS[cell["status"]]] += 1
    return summary


def compare_notebooks(submitted: dict, executed: dict, *, tolerance: Tolerance,
                      max_image_pixels: int | None = None) -> dict:
    """Return the report as a JSON-serialisable dict (see the package docstring). Never raises on odd-but-valid
    notebooks. ``max_image_pixels`` (default ``limits.MAX_IMAGE_PIXELS``) is the most pixels an image may have to
    be decoded; ValueError if it is not a positive whole number."""
    submitted_cells, executed_cells = notebook_cells(submitted), notebook_cells(executed)
    pixel_budget = PixelBudget(limits.MAX_IMAGE_PIXELS if max_image_pixels is None else max_image_pixels,
                               limits.MAX_REPORT_IMAGE_PIXELS)
    context = Context(tolerance=tolerance, image_budget=ImageBudget(limits.REPORT_IMAGE_BUDGET_CHARS),
                      pixel_budget=pixel_budget)
    stop_index = where_execution_stopped(submitted_cells, executed_cells)
    results = [
        compare_cell(index, cell, executed_cells[index] if index < len(executed_cells) else None, stop_index,
                     context)
        for index, cell in enumerate(submitted_cells) if is_code(cell)
    ]
    cell_reports = [result.report for result in results]
    return {
        "verdict": _VERDICT[max((result.severity for result in results), default=IDENTICAL)],
        "tolerance": tolerance.as_dict(),
        "summary": _summary(cell_reports),
        "notes": _notes(submitted_cells, executed_cells, cell_reports, stop_index, context),
        "cells": cell_reports,
    }
