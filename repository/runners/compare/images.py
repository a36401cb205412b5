"""Images other than SVG: decoded with Pillow within a pixel budget, flattened onto white, compared pixel by pixel.

``compare_image`` returns an ``Entry``: "identical" when the base64 texts or the decoded bytes are equal, or when
every pixel is (the harmless "images compared by pixels" rule: PNG bytes differ between library versions),
"within_tolerance" when at most ``Tolerance.max_differing_pixels`` of the pixels differ by more than
``Tolerance.pixel_tolerance`` in a channel, else "differs" with the two pictures and a difference picture (the
submitted one faded to grey, the differing pixels in red).

Images are untrusted and a few kilobytes of PNG can declare billions of pixels, so the worker's time and memory
are bounded by the report's ``PixelBudget``: the declared size is read from the header (``Image.open`` decodes
nothing) and an image over the per-image budget, or one that would exceed what the report may still decode, is
never decoded: it is "differs" with a note saying it was too large to compare (``too_large``), because only equal
bytes prove it reproduced. Decoded images are compared in strips of ``limits.IMAGE_STRIP_PIXELS``, so the working
copies stay small next to the two decoded images. Invalid base64 and images Pillow cannot read "differ" with a
note; nothing here raises. Pictures in the report are reduced to fit ``limits.REPORT_IMAGE_SIDE`` and drawn from
the report's ``ImageBudget``.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import warnings
from collections.abc import Iterator
from typing import Any

from PIL import Image, ImageChops

from repository.runners.compare import limits
from repository.runners.compare.report import Context, Entry, as_text
from repository.runners.compare.rules import (
    DIFFERS,
    IDENTICAL,
    RULE_IMAGE_PIXELS,
    RULE_IMAGE_TOLERANCE,
    WITHIN_TOLERANCE,
)

_SIDES = ("submitted", "re-executed")


class _Unreadable(Exception):
    side: str | None = None  # which image, when it is one of the two


def _each_side(action, values: list) -> list:
    results = []
    for side, value in zip(_SIDES, values, strict=True):
        try:
            results.append(action(value))
        except _Unreadable as problem:
            problem.side = side
            raise
    return results


class _TooLarge(Exception):
    pass


def _raw_bytes(value: Any) -> bytes:
    try:
        return base64.b64decode("".join(as_text(value).split()), validate=True)
    except (binascii.Error, ValueError) as error:
        raise _Unreadable(f"it is not valid base64 ({error})") from error


def _pillow_errors(action):
    """Run ``action``; Pillow raises many types on hostile input, and warns about bombs instead of refusing."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return action()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise _TooLarge(f"Pillow refuses it as a decompression bomb ({error})") from error
    except Exception as error:
        raise _Unreadable(f"Pillow cannot read it ({type(error).__name__}: {error})") from error


def _open(raw: bytes) -> Image.Image:
    """The image with its declared size, read from the header; no pixel is decoded yet."""
    return _pillow_errors(lambda: Image.open(io.BytesIO(raw)))


def _check_budget(images: list[Image.Image], sides: tuple[str, ...], context: Context) -> None:
    budget = context.pixel_budget
    for side, image in zip(sides, images, strict=True):
        width, height = image.size
        if width * height > budget.per_image:
            raise _TooLarge(f"the {side} image is {width}×{height} pixels, more than the {budget.per_image:,} "
                            "pixels per image this comparison decodes (COMPARE_MAX_IMAGE_PIXELS)")
    if not budget.take(sum(image.width * image.height for image in images)):
        raise _TooLarge(f"the images of this notebook together have more than the {budget.total:,} pixels one "
                        "comparison decodes")


def _load(image: Image.Image) -> Image.Image:
    _pillow_errors(image.load)
    return image


def _strips(image: Image.Image, rows: int) -> Iterator[tuple[int, Image.Image]]:
    """Horizontal strips of ``rows`` rows, flattened onto white as RGB, so transparent pixels compare as they look."""
    for top in range(0, image.height, rows):
        strip = image.crop((0, top, image.width, min(image.height, top + rows))).convert("RGBA")
        background = Image.new("RGBA", strip.size, (255, 255, 255, 255))
        yield top, Image.alpha_composite(background, strip).convert("RGB")


def _reduction(size: tuple[int, int]) -> int:
    return max(1, math.ceil(max(size) / limits.REPORT_IMAGE_SIDE))


def _strip_rows(width: int, factor: int) -> int:
    """Rows per strip: about IMAGE_STRIP_PIXELS pixels, a multiple of the reduction factor."""
    return max(factor, limits.IMAGE_STRIP_PIXELS // max(width, 1) // factor * factor)


def _reduced(image: Image.Image, factor: int) -> Image.Image:
    return image.reduce(factor) if factor > 1 else image


def _small_copy(image: Image.Image) -> Image.Image:
    """The whole image flattened and reduced to fit the report, built strip by strip."""
    factor = _reduction(image.size)
    small = Image.new("RGB", (math.ceil(image.width / factor), math.ceil(image.height / factor)), "white")
    for top, strip in _strips(image, _strip_rows(image.width, factor)):
        small.paste(_reduced(strip, factor), (0, top // factor))
    return small


def _entry(base: dict, status: str, severity: int, rules: list[str] | None = None, **fields: Any) -> Entry:
    return Entry({**base, "status": status, "rules": rules or [], **fields}, severity, rules or [])


def compare_image(base: dict, expected_value: Any, actual_value: Any, context: Context) -> Entry:
    if as_text(expected_value) == as_text(actual_value):
        return _entry(base, "identical", IDENTICAL)
    try:
        raws = _each_side(_raw_bytes, [expected_value, actual_value])
        if raws[0] == raws[1]:
            return _entry(base, "identical", IDENTICAL)  # the same bytes, only wrapped otherwise
        images = _each_side(_open, raws)
        _check_budget(images, _SIDES, context)
        if images[0].size != images[1].size:
            return _size_changed(base, images, context)
        return _compare_pixels(base, *_each_side(_load, images), context)
    except _TooLarge as problem:
        return _entry(base, "differs", DIFFERS, too_large=True,
                      note=f"Too large to compare: {problem}. Only byte-identical images count as reproduced.")
    except _Unreadable as problem:
        which = f"{problem.side} {base['mime']} image" if problem.side else f"{base['mime']} images"
        return _entry(base, "differs", DIFFERS, note=f"The {which} could not be compared: {problem}.")


def _size_changed(base: dict, images: list[Image.Image], context: Context) -> Entry:
    expected, actual = images
    report = {**base, "status": "differs", "rules": [],
              "note": f"The image size changed from {expected.width}×{expected.height} "
                      f"to {actual.width}×{actual.height} pixels."}
    _attach_images(report, context, expected_image=_small_copy(_load(expected)),
                   actual_image=_small_copy(_load(actual)))
    return Entry(report, DIFFERS)


class _PixelDifference:
    """The two images compared strip by strip: the histogram of each pixel's largest channel difference, and the
    report's pictures (reduced as they go, so no full-size copy is ever made)."""

    def __init__(self, expected: Image.Image, actual: Image.Image, pixel_tolerance: int):
        self.histogram = [0] * 256
        factor = _reduction(expected.size)
        small_size = (math.ceil(expected.width / factor), math.ceil(expected.height / factor))
        self.expected_small = Image.new("RGB", small_size, "white")
        self.actual_small = Image.new("RGB", small_size, "white")
        self.beyond_small = Image.new("L", small_size, 0)
        rows = _strip_rows(expected.width, factor)
        for (top, expected_strip), (_, actual_strip) in zip(_strips(expected, rows), _strips(actual, rows),
                                                            strict=True):
            red, green, blue = ImageChops.difference(expected_strip, actual_strip).split()
            largest = ImageChops.lighter(ImageChops.lighter(red, green), blue)
            for value, count in enumerate(largest.histogram()):
                self.histogram[value] += count
            beyond = largest.point(lambda value: 255 if value > pixel_tolerance else 0)
            position = (0, top // factor)
            self.expected_small.paste(_reduced(expected_strip, factor), position)
            self.actual_small.paste(_reduced(actual_strip, factor), position)
            # Any differing pixel in a reduced block keeps it red: averaging must not hide a thin changed line.
            self.beyond_small.paste(_reduced(beyond, factor).point(lambda value: 255 if value else 0), position)

    def difference_image(self) -> Image.Image:
        """The submitted picture faded to grey, with the pixels that differ beyond tolerance in red."""
        faded = self.expected_small.convert("L").point(lambda value: 160 + value * 95 // 255).convert("RGB")
        red = Image.new("RGB", faded.size, (220, 0, 0))
        return Image.composite(red, faded, self.beyond_small)


def _compare_pixels(base: dict, expected: Image.Image, actual: Image.Image, context: Context) -> Entry:
    tolerance = context.tolerance
    try:
        difference = _PixelDifference(expected, actual, tolerance.pixel_tolerance)
    except Exception as error:  # a mode Pillow cannot flatten (say, 16-bit greyscale it cannot convert)
        raise _Unreadable(f"Pillow cannot compare it ({type(error).__name__}: {error})") from error
    histogram = difference.histogram
    pixel_count = expected.width * expected.height
    if pixel_count == 0 or not any(histogram[1:]):
        return _entry(base, "identical", IDENTICAL, [RULE_IMAGE_PIXELS])
    differing = sum(histogram[tolerance.pixel_tolerance + 1:]) / pixel_count
    if differing <= tolerance.max_differing_pixels:
        return _entry(base, "within_tolerance", WITHIN_TOLERANCE, [RULE_IMAGE_TOLERANCE], differing_pixels=differing)
    report = {**base, "status": "differs", "rules": [], "differing_pixels": differing}
    _attach_images(report, context, expected_image=difference.expected_small, actual_image=difference.actual_small,
                   difference_image=difference.difference_image())
    return Entry(report, DIFFERS)


def _encode_for_report(image: Image.Image, context: Context) -> str | None:
    shown = image
    if max(image.size) > limits.REPORT_IMAGE_SIDE:
        shown = image.copy()
        shown.thumbnail((limits.REPORT_IMAGE_SIDE, limits.REPORT_IMAGE_SIDE))
    buffer = io.BytesIO()
    shown.save(buffer, format="PNG")
    return context.image_budget.take(base64.b64encode(buffer.getvalue()).decode("ascii"))


def _attach_images(report: dict, context: Context, **images: Image.Image) -> None:
    for key, image in images.items():
        encoded = _encode_for_report(image, context)
        if encoded is None:
            report["note"] = ((report.get("note") or "") + " Images left out to keep the report small.").strip()
            return
        report[key] = encoded


def image_for_report(value: Any, side: str, context: Context) -> str | None:
    """The picture of an image present on one side only, within the same budgets; None if it cannot be shown."""
    try:
        image = _open(_raw_bytes(value))
        _check_budget([image], (side,), context)
        return _encode_for_report(_small_copy(_load(image)), context)
    except (_Unreadable, _TooLarge):
        return None
    except Exception:  # flattening a mode Pillow cannot convert: the entry simply shows no picture
        return None
