"""The caps that keep a comparison of untrusted outputs fast and its report small.

Other modules of the package read these as ``limits.NAME`` at call time, so one change here (or one
``monkeypatch.setattr(limits, ...)`` in a test) reaches every place that uses the cap.
"""

SOURCE_CHARS = 2_000  # of a cell's source, shown in the report
REPORT_TEXT_CHARS = 20_000  # of an expected/actual text or a diff in the report
MAX_COMPARED_CHARS = 10_000_000  # longer texts are compared by SHA-256, without normalisation
# Finding which normalisations were *needed* re-runs the comparison once per rule; above this size we list
# every rule that changed something instead.
LEAVE_ONE_OUT_CHARS = 1_000_000
DIFF_INPUT_LINES = 5_000  # lines fed to difflib, from just before the first difference
MAX_IMAGE_PIXELS = 50_000_000  # larger images are not decoded: they differ, with a note
REPORT_IMAGE_SIDE = 1_600  # images in the report are scaled down to fit this square
REPORT_IMAGE_BUDGET_CHARS = 25_000_000  # base64 image text in one report, all images together
MAX_LISTED_CELLS = 20  # cell numbers named in one note
