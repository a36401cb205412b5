"""The vocabulary of a report: the three severities, the status names, and the rules a match may need.

A rule names one thing that had to be set aside for an output to match. Harmless rules remove what changes on
every honest run and leave the output "identical"; tolerance rules accept a real but small difference and make
it "within_tolerance". Severities are ordered so that the worst of several is their ``max()``.
"""

RULE_LINE_ENDINGS = "line endings"
RULE_ANSI = "ANSI codes"
RULE_CARRIAGE_RETURNS = "progress bars (carriage returns)"
RULE_PROGRESS = "progress rates and times"
RULE_TIMINGS = "timing measurements"
RULE_ADDRESSES = "memory addresses"
RULE_TEMP_PATHS = "temporary paths"
RULE_INSTALL_PATHS = "installation paths"
RULE_TIMESTAMPS = "timestamps"
RULE_UNORDERED_COLLECTIONS = "unordered collection (set and dict order)"
RULE_TRAILING_WHITESPACE = "trailing whitespace"
RULE_SVG_IDS = "SVG ids"
RULE_HTML_TEXT = "HTML compared by its text"
RULE_WIDGET_IDS = "widget model ids"
RULE_IMAGE_PIXELS = "images compared by pixels"
RULE_NUMBERS = "numbers within tolerance"
RULE_ALIGNMENT = "column alignment (spaces)"
RULE_IMAGE_TOLERANCE = "image pixels within tolerance"
RULE_STDERR = "stderr differences"

HARMLESS_RULES = (
    RULE_LINE_ENDINGS, RULE_ANSI, RULE_CARRIAGE_RETURNS, RULE_PROGRESS, RULE_TIMINGS, RULE_ADDRESSES,
    RULE_TEMP_PATHS, RULE_INSTALL_PATHS, RULE_TIMESTAMPS, RULE_UNORDERED_COLLECTIONS, RULE_TRAILING_WHITESPACE,
    RULE_SVG_IDS, RULE_HTML_TEXT, RULE_WIDGET_IDS, RULE_IMAGE_PIXELS,
)
TOLERANCE_RULES = (RULE_NUMBERS, RULE_ALIGNMENT, RULE_IMAGE_TOLERANCE, RULE_STDERR)

# Severities, ordered so that the worst of several is their max().
IDENTICAL, WITHIN_TOLERANCE, DIFFERS = 0, 1, 2
STATUS = {IDENTICAL: "identical", WITHIN_TOLERANCE: "within_tolerance", DIFFERS: "differs"}
