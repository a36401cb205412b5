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
# Sets and dicts are parsed (never evaluated) to compare them regardless of order: one "{...}" of at most
# LITERAL_MAX_CHARS, at most LITERAL_PARSE_BUDGET_CHARS of parsing per text (about 0.2 s on a slow core).
LITERAL_MAX_CHARS = 100_000
LITERAL_PARSE_BUDGET_CHARS = 300_000
LITERAL_MAX_SPANS = 20_000  # balanced "{...}" looked at per text; any after them are compared in their order
DIFF_INPUT_LINES = 5_000  # lines fed to difflib, from just before the first difference
# Images are decoded only within a pixel budget, checked from the header before decoding: at most
# MAX_IMAGE_PIXELS per image (the default; callers pass COMPARE_MAX_IMAGE_PIXELS) and MAX_REPORT_IMAGE_PIXELS for
# all the images of one report. Beyond it an image is "too large to compare": identical only if its bytes are.
MAX_IMAGE_PIXELS = 25_000_000
MAX_REPORT_IMAGE_PIXELS = 400_000_000
IMAGE_STRIP_PIXELS = 1_000_000  # pixels flattened and diffed at a time, so working copies stay small
REPORT_IMAGE_SIDE = 1_600  # images in the report are scaled down to fit this square
REPORT_IMAGE_BUDGET_CHARS = 25_000_000  # base64 image text in one report, all images together
MAX_LISTED_CELLS = 20  # cell numbers named in one note
