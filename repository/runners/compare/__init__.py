"""Compare the outputs a notebook was submitted with against the outputs of its fresh execution.

Contract
--------
``compare_notebooks(submitted, executed, tolerance=..., max_image_pixels=...)`` takes two nbformat-4 notebooks as
plain dicts (what ``json.loads`` gives) and returns a reproducibility report as a JSON-serialisable dict. It is
pure: it reads no settings (the caller passes the ``Tolerance``, e.g. built with ``Tolerance.from_dict`` from
per-version overrides, and the pixel budget per image, ``COMPARE_MAX_IMAGE_PIXELS``), touches no database and
never raises on odd-but-valid notebooks; outputs are untrusted, so malformed images, giant images and giant texts
end up as "differs" with a note, never as an exception. ``Tolerance(...)``, ``Tolerance.from_dict`` and a
``max_image_pixels`` below 1 raise ``ValueError`` for bad settings.

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
``differing_pixels`` (fraction), ``too_large`` (images over the pixel budget) and ``note``. HTML entries show the
text extracted from the HTML.

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
* Images other than SVG: decoded with Pillow, flattened onto white and compared pixel by pixel, within a pixel
  budget read from the header before decoding (per image, and for the whole report): an image over it is "too
  large to compare" (``too_large`` in its entry, a note), which differs unless its bytes are identical.
* JSON MIME types: parsed and compared structurally, numbers within tolerance; widget views without model_id.
* Any other MIME type: equal after the text normalisations.
* Texts over ``MAX_COMPARED_CHARS`` are compared by SHA-256 of the raw text, as the entry's note says.

Rules and verdicts
------------------
Every rule needed to make an output match is named in the report. Harmless rules remove what changes on
every honest run and leave the cell "identical", so the notebook can still be "reproduced": line endings,
ANSI codes, progress bars (carriage returns), progress rates and times, timing measurements, memory
addresses, temporary paths, installation paths, timestamps, unordered collections (the order of set elements and
dict items), trailing whitespace, SVG ids,
HTML compared by its text, widget model ids, images compared by pixels (pixel-identical, bytes differ).
Tolerance rules accept a real but small difference and make the cell "within_tolerance", so the notebook is
at best "reproduced_with_differences": numbers within tolerance, column alignment (spaces), image pixels
within tolerance, stderr differences (warnings, logging and progress on stderr never make a cell differ).

A cell "differs" when an output differs beyond tolerance, a stored output is missing, a new output other than
stderr appears, an error appears, or a ``raises-exception`` cell raised nothing. A cell that ran in the submitted
notebook (it has an execution count) and stored no output claims to print nothing: output other than stderr in
the fresh run makes it differ, with a hint. Cells tagged ``nbarchive-skip-compare``/``nbval-ignore-output`` are
still compared but listed as "skipped": if they differ, the notebook is at best "reproduced_with_differences".
Cells that never ran in the submitted notebook (no outputs and no execution count) but produce output now
("no_stored_output") cannot be checked and count the same way. "not_executed" cells count as differing.
Verdict: "reproduced" if every code cell is identical, "not_reproduced" if any cell differs, else
"reproduced_with_differences".

Modules
-------
notebook.py (``compare_notebooks``: verdict, summary, notes) -> cells.py (one code cell and its status) ->
outputs.py (pairing a cell's outputs; dispatch by output and MIME type) -> text.py (texts and HTML with rules),
structured.py (JSON MIME types), images.py (pixels). Beneath them: normalise.py (the text normalisations),
numeric.py (``Tolerance``; numbers within tolerance), report.py (report entries, capped texts and diffs),
rules.py (rule names and severities) and limits.py (the size caps, read at call time).
"""

from repository.runners.compare.cells import RAISES_EXCEPTION_TAGS, SKIP_COMPARE_TAGS
from repository.runners.compare.notebook import compare_notebooks
from repository.runners.compare.numeric import RANDOM_NUMBERS_HINT, Tolerance
from repository.runners.compare.rules import HARMLESS_RULES, TOLERANCE_RULES

__all__ = [
    "HARMLESS_RULES",
    "RAISES_EXCEPTION_TAGS",
    "RANDOM_NUMBERS_HINT",
    "SKIP_COMPARE_TAGS",
    "TOLERANCE_RULES",
    "Tolerance",
    "compare_notebooks",
]
