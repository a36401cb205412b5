"""Image comparison within a pixel budget: what a moderator sees when an image is too large to compare, and that
the worker never decodes it.

Large PNGs are written row by row with zlib: a solid colour of 8000×8000 pixels is about 200 kB of PNG, so the test
costs little while Pillow would need a quarter of a gigabyte per image to decode it.
"""

import base64
import json
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image, ImageFile

from repository.runners.base import Outcome, RunResult, SandboxLimits
from repository.runners.compare import Tolerance, compare_notebooks, limits
from tests.repository.runners.test_compare import code, figure, notebook, plot_with_line, png, run


def solid_png(width: int, height: int, rgb=(30, 110, 180), level: int = 9) -> str:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    row = b"\x00" + bytes(rgb) * width
    compressor = zlib.compressobj(level)
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    return base64.b64encode(data).decode("ascii")


def one_figure(stored: str, fresh: str, tolerance=None, **options) -> tuple[dict, dict]:
    report = compare_notebooks(notebook(code("plot()", figure(stored), count=1)),
                               notebook(code("plot()", figure(fresh), count=1)), tolerance=tolerance or Tolerance(),
                               **options)
    json.dumps(report, allow_nan=False)
    return report, report["cells"][0]["outputs"][0]


@pytest.fixture
def no_decoding(monkeypatch):
    """Decoding pixels fails the test: only headers may be read."""
    def refuse(self):
        raise AssertionError(f"decoded a {self.size} image")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


def test_an_image_over_the_budget_is_too_large_to_compare_and_never_decoded(no_decoding):
    # The same picture encoded twice: decoded, it would be identical; unseen, it cannot count as reproduced.
    stored, fresh = solid_png(8000, 8000, level=9), solid_png(8000, 8000, level=1)
    assert len(stored) < 500_000 and stored != fresh  # while decoded it would take 256 MB

    report, entry = one_figure(stored, fresh)

    assert report["verdict"] == "not_reproduced"
    assert report["cells"][0]["status"] == "differs"
    assert (entry["mime"], entry["status"], entry["too_large"]) == ("image/png", "differs", True)
    assert entry["note"] == ("Too large to compare: the submitted image is 8000×8000 pixels, more than the "
                             "25,000,000 pixels per image this comparison decodes (COMPARE_MAX_IMAGE_PIXELS). Only "
                             "byte-identical images count as reproduced.")
    assert "expected_image" not in entry and "difference_image" not in entry
    assert ("Images of cells 0 were too large to compare pixel by pixel; they count as reproduced only where their "
            "bytes are identical.") in report["notes"]


def test_an_image_over_the_budget_with_identical_bytes_is_identical(no_decoding):
    stored = solid_png(8000, 8000)
    rewrapped = "\n".join(stored[i:i + 76] for i in range(0, len(stored), 76))  # the same bytes, base64 wrapped

    report, entry = one_figure(stored, rewrapped)

    assert report["verdict"] == "reproduced"
    assert entry["status"] == "identical" and "too_large" not in entry


def test_the_budget_per_image_is_the_callers_setting():
    stored, fresh = png(plot_with_line()), png(plot_with_line(), compress_level=1)

    assert one_figure(stored, fresh)[1]["status"] == "identical"
    report, entry = one_figure(stored, fresh, max_image_pixels=7_999)
    assert entry["too_large"] and "100×80 pixels, more than the 7,999 pixels per image" in entry["note"]
    with pytest.raises(ValueError, match="at least 1"):
        one_figure(stored, fresh, max_image_pixels=0)


def test_the_images_of_one_report_share_a_budget(monkeypatch):
    monkeypatch.setattr(limits, "MAX_REPORT_IMAGE_PIXELS", 3 * 100 * 80)
    stored, fresh = png(plot_with_line()), png(plot_with_line(), compress_level=1)
    report = run(notebook(code("a()", figure(stored), count=1), code("b()", figure(stored), count=2)),
                 notebook(code("a()", figure(fresh), count=1), code("b()", figure(fresh), count=2)))

    first, second = (cell["outputs"][0] for cell in report["cells"])
    assert first["status"] == "identical"
    assert second["too_large"] and "together have more than the 24,000 pixels" in second["note"]
    assert report["verdict"] == "not_reproduced"


@pytest.mark.parametrize("strip_pixels", [1_000_000, 700, 100])
def test_comparing_in_strips_gives_the_same_result(monkeypatch, strip_pixels):
    monkeypatch.setattr(limits, "IMAGE_STRIP_PIXELS", strip_pixels)
    stored = png(plot_with_line())
    assert one_figure(stored, png(plot_with_line(), compress_level=1))[1]["status"] == "identical"

    report, entry = one_figure(stored, png(plot_with_line(offset=4)))
    assert report["verdict"] == "not_reproduced"
    assert entry["differing_pixels"] == pytest.approx(_differing_fraction(plot_with_line(), plot_with_line(offset=4)))
    assert {"expected_image", "actual_image", "difference_image"} <= set(entry)


def _differing_fraction(first: Image.Image, second: Image.Image) -> float:
    pairs = zip(first.get_flattened_data(), second.get_flattened_data(), strict=True)
    return sum(max(abs(a - b) for a, b in zip(p, q, strict=True)) > 8 for p, q in pairs) / (first.width * first.height)


def test_a_thin_changed_line_stays_red_in_a_reduced_difference_picture():
    wide = Image.new("RGB", (4000, 60), "white")
    changed = wide.copy()
    changed.putpixel((2001, 30), (0, 0, 0))
    changed.putpixel((2002, 30), (0, 0, 0))

    _, entry = one_figure(png(wide), png(changed), tolerance=Tolerance(max_differing_pixels=0))

    picture = Image.open(_decoded(entry["difference_image"]))
    assert picture.width <= limits.REPORT_IMAGE_SIDE
    assert (220, 0, 0) in {colour for _, colour in picture.convert("RGB").getcolors(maxcolors=10_000)}


def _decoded(data: str):
    import io

    return io.BytesIO(base64.b64decode(data))


class _FixedRunner:
    """A runner that "executes" a notebook by handing back a prepared executed notebook."""

    name = "fixed"

    def __init__(self, executed: dict):
        self.executed = executed

    def run(self, spec):
        now = datetime.now(UTC)
        return RunResult(outcome=Outcome.COMPLETED, message="", executed_notebook=json.dumps(self.executed).encode(),
                         logs="", started_at=now, finished_at=now)


def test_notebook_verify_applies_the_compare_max_image_pixels_setting(settings, tmp_path: Path):
    from repository.services.verification import notebook_verify

    settings.COMPARE_MAX_IMAGE_PIXELS = 1_000
    source = "plot()"
    submitted = notebook(code(source, figure(png(plot_with_line())), count=1))
    executed = notebook(code(source, figure(png(plot_with_line(), compress_level=1)), count=1))
    (tmp_path / "nb.ipynb").write_text(json.dumps(submitted))

    verification = notebook_verify(workdir=tmp_path, notebook_path="nb.ipynb", runner=_FixedRunner(executed),
                                   tolerance=Tolerance(), limits=SandboxLimits())

    assert verification.verdict == "not_reproduced"
    assert verification.report["cells"][0]["outputs"][0]["too_large"] is True
