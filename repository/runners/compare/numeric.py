"""Numbers: the ``Tolerance`` a comparison allows, and texts compared number by number within it.

``Tolerance(...)`` and ``Tolerance.from_dict`` raise ``ValueError`` for bad settings; nothing else here raises.
``match_normalised`` compares two already normalised texts: equal texts are identical; texts whose MIME type may
carry computed numbers are cut into numeric and other parts, the other parts must match (spacing aside, which is
the "column alignment" rule), integers must be equal and floats (also ``1e-5``, ``nan``, ``inf``) must agree
within ``rtol``/``atol`` (the "numbers within tolerance" rule). When numbers differ beyond tolerance, a hint
names the usual cause a moderator can act on: unseeded randomness, or noise just above the tolerance.
"""

from __future__ import annotations

import dataclasses
import math
import re
import statistics
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Any

from repository.runners.compare.rules import DIFFERS, IDENTICAL, RULE_ALIGNMENT, RULE_NUMBERS, WITHIN_TOLERANCE

RANDOM_NUMBERS_HINT = "The numbers differ widely between runs; is the random generator seeded?"


@dataclass(frozen=True)
class Tolerance:
    """How far fresh outputs may stray from the stored ones and still count as reproduced with differences."""

    rtol: float = 1e-9          # relative tolerance for floats
    atol: float = 1e-12         # absolute tolerance for floats
    pixel_tolerance: int = 8    # per-channel difference (0-255) up to which two pixels count as equal
    max_differing_pixels: float = 0.001   # fraction of pixels allowed to differ beyond pixel_tolerance

    def __post_init__(self):
        # Validate here rather than only in from_dict, so a Tolerance built from settings cannot be nonsense.
        for name in ("rtol", "atol"):
            object.__setattr__(self, name, _non_negative_number(name, getattr(self, name)))
        fraction = _non_negative_number("max_differing_pixels", self.max_differing_pixels)
        if fraction > 1:
            raise ValueError(f"Tolerance setting 'max_differing_pixels' is a fraction from 0 to 1, not {fraction!r}.")
        object.__setattr__(self, "max_differing_pixels", fraction)
        pixel = self.pixel_tolerance
        if isinstance(pixel, bool) or not isinstance(pixel, int) or not 0 <= pixel <= 255:
            raise ValueError(
                f"Tolerance setting 'pixel_tolerance' must be a whole number from 0 to 255, not {pixel!r}.")

    @classmethod
    def from_dict(cls, values: dict | None, *, default: Tolerance) -> Tolerance:
        """Apply per-version overrides such as ``{"rtol": 1e-6}`` to ``default``; ``None`` means no overrides."""
        if values is None:
            return default
        if not isinstance(values, dict):
            # ValueError, not TypeError: callers treat every bad override the same way (a clear message).
            raise ValueError(  # noqa: TRY004
                f"Tolerance overrides must be a mapping of setting names to values, not {type(values).__name__}.")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(str(key) for key in values if key not in known)
        if unknown:
            raise ValueError(f"Unknown tolerance setting(s) {', '.join(map(repr, unknown))}; "
                             f"the settings are {', '.join(sorted(known))}.")
        return dataclasses.replace(default, **values)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _non_negative_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"Tolerance setting {name!r} must be a finite number of at least 0, not {value!r}.")
    return float(value)


# --- Numbers in text -----------------------------------------------------------------------------------------

# Not preceded by a letter, digit or dot, so identifiers ("x1", "float64") and version tails ("1.5.2") stay text.
_NUMBER = re.compile(
    r"(?<![A-Za-z_\d.])[-+]?"
    r"(?:(?:\d+\.\d*|\.\d+)(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+|\d+|nan|NaN|inf|Inf|infinity|Infinity)"
    r"(?![A-Za-z_\d])"
)
_HORIZONTAL_SPACE = re.compile(r"[ \t]+")
_INTEGER = re.compile(r"[-+]?\d+")
# Python refuses to parse longer integer strings (int_max_str_digits).
_MAX_INTEGER_DIGITS = 4_000


@dataclass
class TextMatch:
    severity: int
    rules: list[str] = field(default_factory=list)
    hint: str | None = None


def match_normalised(expected: str, actual: str, *, numeric: bool, tolerance: Tolerance) -> TextMatch:
    if expected == actual:
        return TextMatch(IDENTICAL)
    if not numeric:
        return TextMatch(DIFFERS)
    return _match_numbers(expected, actual, tolerance)


def _match_numbers(expected: str, actual: str, tolerance: Tolerance) -> TextMatch:
    """Walk both texts number by number (streaming, so a 10 MB table costs no token lists)."""
    expected_position = actual_position = 0
    numbers_compared = 0
    numbers_reformatted = spacing_differs = False
    beyond_tolerance: list[tuple[float, bool]] = []  # (relative difference, both integers)
    for expected_number, actual_number in zip_longest(_NUMBER.finditer(expected), _NUMBER.finditer(actual)):
        if expected_number is None or actual_number is None:
            return TextMatch(DIFFERS)
        between = _compare_between(expected[expected_position:expected_number.start()],
                                   actual[actual_position:actual_number.start()])
        if between == DIFFERS:
            return TextMatch(DIFFERS)
        spacing_differs |= between == WITHIN_TOLERANCE
        numbers_compared += 1
        if expected_number.group() != actual_number.group():
            close, relative_difference = _numbers_agree(expected_number.group(), actual_number.group(), tolerance)
            if close:
                numbers_reformatted = True
            else:
                both_integers = bool(_INTEGER.fullmatch(expected_number.group())
                                     and _INTEGER.fullmatch(actual_number.group()))
                beyond_tolerance.append((relative_difference, both_integers))
        expected_position, actual_position = expected_number.end(), actual_number.end()
    tail = _compare_between(expected[expected_position:], actual[actual_position:])
    if tail == DIFFERS:
        return TextMatch(DIFFERS)
    spacing_differs |= tail == WITHIN_TOLERANCE
    if beyond_tolerance:
        return TextMatch(DIFFERS, hint=_numbers_hint(numbers_compared, beyond_tolerance))
    rules = [RULE_NUMBERS] * numbers_reformatted + [RULE_ALIGNMENT] * spacing_differs
    return TextMatch(WITHIN_TOLERANCE if rules else IDENTICAL, rules)


def _compare_between(expected: str, actual: str) -> int:
    """Text between numbers must match; spacing may differ because numbers of other widths realign columns."""
    if expected == actual:
        return IDENTICAL
    if _HORIZONTAL_SPACE.sub("", expected) == _HORIZONTAL_SPACE.sub("", actual):
        return WITHIN_TOLERANCE
    return DIFFERS


def _numbers_agree(expected: str, actual: str, tolerance: Tolerance) -> tuple[bool, float]:
    """Whether two numeric tokens agree (integers exactly, floats within tolerance), and how far apart they are."""
    if _INTEGER.fullmatch(expected) and _INTEGER.fullmatch(actual):
        if max(len(expected), len(actual)) > _MAX_INTEGER_DIGITS:
            return expected.lstrip("+") == actual.lstrip("+"), math.inf
        expected_int, actual_int = int(expected), int(actual)
        return expected_int == actual_int, _relative_difference(expected_int, actual_int)
    expected_float, actual_float = float(expected), float(actual)
    if math.isnan(expected_float) or math.isnan(actual_float):
        both_nan = math.isnan(expected_float) and math.isnan(actual_float)
        return both_nan, 0.0 if both_nan else math.inf
    if math.isclose(expected_float, actual_float, rel_tol=tolerance.rtol, abs_tol=tolerance.atol):
        return True, 0.0
    return False, _relative_difference(expected_float, actual_float)


def _relative_difference(expected: float, actual: float) -> float:
    try:
        scale = max(abs(expected), abs(actual))
        difference = abs(expected - actual) / scale if scale else 0.0
    except (OverflowError, ArithmeticError):
        return math.inf
    # inf against -inf (or against a finite number) gives nan here: infinitely far apart.
    return difference if math.isfinite(difference) else math.inf


def _numbers_hint(numbers_compared: int, beyond_tolerance: list[tuple[float, bool]]) -> str | None:
    """Name the two usual causes a moderator can act on: unseeded randomness, and noise above the tolerance."""
    differences = [difference for difference, _ in beyond_tolerance]
    most_numbers_changed = len(differences) >= 3 and 2 * len(differences) >= numbers_compared
    if most_numbers_changed and statistics.median(differences) >= 0.01:
        return RANDOM_NUMBERS_HINT
    largest = max(differences)
    # Integers are compared exactly whatever the tolerance, so suggesting one would not help.
    if largest < 1e-3 and not any(both_integers for _, both_integers in beyond_tolerance):
        suggested_rtol = 10.0 ** math.ceil(math.log10(largest * 1.01)) if largest > 0 else 1e-9
        return (f"The numbers differ only slightly (largest relative difference {largest:.1e}); if that is "
                f"floating-point noise, a tolerance of rtol={suggested_rtol:.0e} for this version would accept it.")
    return None
