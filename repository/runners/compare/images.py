"""Images other than SVG: decoded with Pillow, flattened onto white and compared pixel by pixel.

``compare_image`` returns an ``Entry``: "identical" when the base64 texts are equal or every pixel is (the
harmless "images compared by pixels" rule: PNG bytes differ between library versions), "within_tolerance" when
at most ``Tolerance.max_differing_pixels`` of the pixels differ by more than ``Tolerance.pixel_tolerance`` in a
channel, else "differs" with the two pictures and a difference picture (the submitted one faded to grey, the
differing pixels in red). Images are untrusted: invalid base64, images Pillow cannot read and images of more
than ``limits.MAX_IMAGE_PIXELS`` "differ" with a note and never raise. Pictures in the report are scaled to
``limits.REPORT_IMAGE_SIDE`` and drawn from the report's ``ImageBudget``.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from typing import Any

from PIL import Image, ImageChops

from repository.runners.compare import limits
from repository.runners.compare.report import Context, Entry, ImageBudget, as_text
from repository.runners.compare.rules import (
    DIFFERS,
    IDENTICAL,
    RULE_IMAGE_PIXELS,
    RULE_IMAGE_TOLERANCE,
    WITHIN_TOLERANCE,
)


class _UndecodableImage(Exception):
    pass


def _decode_image(value: Any) -> Image.Image:
    """Decode a base64 image into RGB flattened onto white, so transparent pixels compare as they look."""
    try:
        raw = base64.b64decode("".join(as_text(value).split()), validate=True)
    except (binascii.Error, ValueError) as error:
        raise _UndecodableImage(f"it is not valid base64 ({error})") from error
    too_large = f"it has more than the {limits.MAX_IMAGE_PIXELS:,} pixels this comparison decodes"
    try:
        with warnings.catch_warnings():
            # Pillow only warns below twice its own limit; a warning here would reach the worker's log instead.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as image:
                width, height = image.size
                if width * height > limits.MAX_IMAGE_PIXELS:
                    raise _UndecodableImage(f"it is {width}×{height} pixels; {too_large}")
                image.load()
                rgba = image.convert("RGBA")
    except _UndecodableImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise _UndecodableImage(too_large) from error
    except Exception as error:  # Pillow raises many types on hostile input
        raise _UndecodableImage(f"Pillow cannot read it ({type(error).__name__}: {error})") from error
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _encode_for_report(image: Image.Image, budget: ImageBudget) -> str | None:
    shown = image
    if max(image.size) > limits.REPORT_IMAGE_SIDE:
        shown = image.copy()
        shown.thumbnail((limits.REPORT_IMAGE_SIDE, limits.REPORT_IMAGE_SIDE))
    buffer = io.BytesIO()
    shown.save(buffer, format="PNG")
    return budget.take(base64.b64encode(buffer.getvalue()).decode("ascii"))


def _difference_image(expected: Image.Image, beyond_tolerance: Image.Image) -> Image.Image:
    """The submitted picture faded to grey, with the pixels that differ beyond tolerance in red."""
    faded = expected.convert("L").point(lambda value: 160 + value * 95 // 255).convert("RGB")
    red = Image.new("RGB", expected.size, (220, 0, 0))
    return Image.composite(red, faded, beyond_tolerance)


def compare_image(base: dict, expected_value: Any, actual_value: Any, context: Context) -> Entry:
    if as_text(expected_value) == as_text(actual_value):
        return Entry({**base, "status": "identical", "rules": []}, IDENTICAL)
    images = {}
    for side, value in (("submitted", expected_value), ("re-executed", actual_value)):
        try:
            images[side] = _decode_image(value)
        except _UndecodableImage as problem:
            return Entry({**base, "status": "differs", "rules": [],
                           "note": f"The {side} {base['mime']} image could not be compared: {problem}."}, DIFFERS)
    expected, actual = images["submitted"], images["re-executed"]
    if expected.size != actual.size:
        report = {**base, "status": "differs", "rules": [],
                  "note": f"The image size changed from {expected.width}×{expected.height} "
                          f"to {actual.width}×{actual.height} pixels."}
        _attach_images(report, context, expected_image=expected, actual_image=actual)
        return Entry(report, DIFFERS)
    return _compare_pixels(base, expected, actual, context)


def _compare_pixels(base: dict, expected: Image.Image, actual: Image.Image, context: Context) -> Entry:
    tolerance = context.tolerance
    red, green, blue = ImageChops.difference(expected, actual).split()
    largest_channel_difference = ImageChops.lighter(ImageChops.lighter(red, green), blue)
    histogram = largest_channel_difference.histogram()
    pixel_count = expected.width * expected.height
    if pixel_count == 0 or not any(histogram[1:]):
        return Entry({**base, "status": "identical", "rules": [RULE_IMAGE_PIXELS]}, IDENTICAL, [RULE_IMAGE_PIXELS])
    differing = sum(histogram[tolerance.pixel_tolerance + 1:]) / pixel_count
    if differing <= tolerance.max_differing_pixels:
        rules = [RULE_IMAGE_TOLERANCE]
        report = {**base, "status": "within_tolerance", "rules": rules, "differing_pixels": differing}
        return Entry(report, WITHIN_TOLERANCE, rules)
    beyond_tolerance = largest_channel_difference.point(
        lambda value: 255 if value > tolerance.pixel_tolerance else 0, mode="1")
    report = {**base, "status": "differs", "rules": [], "differing_pixels": differing}
    _attach_images(report, context, expected_image=expected, actual_image=actual,
                   difference_image=_difference_image(expected, beyond_tolerance))
    return Entry(report, DIFFERS)


def _attach_images(report: dict, context: Context, **images: Image.Image) -> None:
    for key, image in images.items():
        encoded = _encode_for_report(image, context.image_budget)
        if encoded is None:
            report["note"] = ((report.get("note") or "") + " Images left out to keep the report small.").strip()
            return
        report[key] = encoded


def image_for_report(value: Any, context: Context) -> str | None:
    try:
        return _encode_for_report(_decode_image(value), context.image_budget)
    except _UndecodableImage:
        return None

