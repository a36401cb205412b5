"""Validation of uploaded notebooks.

The raw JSON is validated, not what nbformat.reads returns: reads silently upgrades nbformat 3 and silently
repairs duplicate cell ids, and a submitter must see those problems instead of having them papered over.
"""

import io
import json
import re
from collections import Counter

from nbformat import validator

from repository.errors import InvalidNotebook
from repository.json_input import JSONTooDeep, json_loads_bounded

SUPPORTED_MAJOR = 4
# Deeper than any real notebook's outputs or metadata, and shallow enough that nbformat's schema validation
# (several Python frames per level) stays far from the recursion limit.
MAX_NOTEBOOK_DEPTH = 100


def notebook_validate(fileobj) -> dict:
    """Parse and validate a notebook; return it as a dict or raise InvalidNotebook with the first problem."""
    try:
        # Notebooks are UTF-8 (nbformat's rule); json.load would otherwise guess UTF-16/32 from the first bytes.
        text = io.TextIOWrapper(fileobj, encoding="utf-8-sig", errors="strict").read()
        document = json_loads_bounded(text, max_depth=MAX_NOTEBOOK_DEPTH)
    except UnicodeDecodeError:
        raise InvalidNotebook("The notebook is not UTF-8 text.") from None
    except json.JSONDecodeError as exc:
        raise InvalidNotebook(
            f"The notebook is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
        ) from None
    except JSONTooDeep:
        raise InvalidNotebook(
            f"The notebook's JSON is nested too deeply (more than {MAX_NOTEBOOK_DEPTH} levels)."
        ) from None
    if not isinstance(document, dict):
        raise InvalidNotebook("The notebook must be a JSON object with 'cells', 'metadata' and 'nbformat'.")
    major = document.get("nbformat")
    if not isinstance(major, int) or isinstance(major, bool):
        raise InvalidNotebook("The notebook has no integer 'nbformat' version; is it a Jupyter notebook?")
    if major < SUPPORTED_MAJOR:
        raise InvalidNotebook(
            f"The notebook is in nbformat {major}; only nbformat 4 is accepted. Open and save it in a current "
            "Jupyter (or run `jupyter nbconvert --to notebook --inplace`) to upgrade it."
        )
    if major > SUPPORTED_MAJOR:
        raise InvalidNotebook(f"nbformat {major} is not supported yet; save the notebook as nbformat 4.")
    first_error = next(iter(validator.iter_validate(document)), None)
    if first_error is not None:
        location = "/".join(str(part) for part in getattr(first_error, "absolute_path", [])) or "(top level)"
        raise InvalidNotebook(f"The notebook does not follow nbformat 4: {first_error.message} at {location}.")
    surrogate_at = _lone_surrogate_location(document)
    if surrogate_at is not None:
        raise InvalidNotebook(
            f"The notebook holds text that is not valid Unicode (a lone UTF-16 surrogate, written as \\ud8xx-\\udfxx "
            f"in the JSON) at {surrogate_at}; it cannot be stored, shown or compared. Remove that character."
        )
    duplicate_ids = [cell_id for cell_id, count in _cell_ids(document).items() if count > 1]
    if duplicate_ids:
        raise InvalidNotebook(
            f"Cell id '{duplicate_ids[0]}' is used by more than one cell; cell ids must be unique."
        )
    return document


def never_executed(document: dict) -> bool:
    """A notebook whose code cells were never run: some have source, none has an output or an execution count.

    Such a notebook records no result, so re-running it proves nothing; it is refused before running.
    """
    code_cells = [cell for cell in document.get("cells", []) if isinstance(cell, dict)
                  and cell.get("cell_type") == "code"]
    has_code = any("".join(cell.get("source") or "").strip() for cell in code_cells)
    ran = any(cell.get("outputs") or cell.get("execution_count") is not None for cell in code_cells)
    return has_code and not ran


def _lone_surrogate_location(document) -> str | None:
    """Where the first string holding a lone surrogate is (a JSON path like cells/3/source), or None.

    json.loads turns the escape \\ud800 into a str that no UTF-8 encoder, database or XML writer accepts.
    """
    pending = [((), document)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return "/".join(str(part) for part in path) or "(top level)"
        elif isinstance(value, dict):
            pending.extend(((*path, key), item) for key, item in value.items())
            if any(_SURROGATE.search(key) for key in value):
                return "/".join(str(part) for part in path) or "(top level)"
        elif isinstance(value, list):
            pending.extend(((*path, index), item) for index, item in reversed(list(enumerate(value))))
    return None


_SURROGATE = re.compile("[\ud800-\udfff]")


def _cell_ids(document: dict) -> Counter:
    return Counter(cell["id"] for cell in document.get("cells", []) if isinstance(cell, dict) and "id" in cell)
