"""The reproducibility comparison: each rule and verdict on small notebooks a user would recognise."""

import base64
import io
import json

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from PIL import Image, ImageDraw

from repository.runners.compare import RANDOM_NUMBERS_HINT, Tolerance, compare_notebooks, limits

# --- building notebooks --------------------------------------------------------------------------------------


def notebook(*cells):
    return json.loads(json.dumps(new_notebook(cells=list(cells))))


def code(source, *outputs, count=None, tags=()):
    metadata = {"tags": list(tags)} if tags else {}
    return new_code_cell(source, outputs=list(outputs), execution_count=count, metadata=metadata)


def stdout(text):
    return new_output("stream", name="stdout", text=text)


def stderr(text):
    return new_output("stream", name="stderr", text=text)


def result(data, count=1):
    if isinstance(data, str):
        data = {"text/plain": data}
    return new_output("execute_result", data=data, execution_count=count)


def display(data):
    return new_output("display_data", data=data)


def error(ename, evalue, traceback=("Traceback (most recent call last)",)):
    return new_output("error", ename=ename, evalue=evalue, traceback=list(traceback))


def run(submitted, executed, tolerance=None):
    report = compare_notebooks(submitted, executed, tolerance=tolerance or Tolerance())
    json.dumps(report, allow_nan=False)  # the caller stores it as JSON
    return report


def compare_one_output(source, stored_output, fresh_output, tolerance=None):
    """Compare a one-cell notebook whose cell has one output; return (report, cell report)."""
    report = run(notebook(code(source, stored_output, count=1)), notebook(code(source, fresh_output, count=1)),
                 tolerance)
    return report, report["cells"][0]


def png(image, **save_options):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **save_options)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def plot_with_line(offset=0, size=(100, 80)):
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).line([(5, 20 + offset), (95, 60 + offset)], fill=(31, 119, 180), width=3)
    return image


def figure(image_b64):
    return display({"image/png": image_b64, "text/plain": "<Figure size 640x480 with 1 Axes>"})


# --- verdicts ------------------------------------------------------------------------------------------------


def test_identical_outputs_are_reproduced():
    submitted = notebook(
        new_markdown_cell("# Analysis"),
        code("x = 21 * 2", count=1),
        code("print(x)", stdout("42\n"), count=2),
        code("x / 4", result("10.5", count=3), count=3),
    )
    report = run(submitted, submitted)
    assert report["verdict"] == "reproduced"
    assert report["summary"] == {"code_cells": 3, "identical": 3, "within_tolerance": 0, "differ": 0, "skipped": 0,
                                 "expected_errors": 0, "no_stored_output": 0, "not_executed": 0}
    assert [cell["index"] for cell in report["cells"]] == [1, 2, 3]
    assert all(cell["rules"] == [] for cell in report["cells"])
    assert report["notes"] == []
    assert report["tolerance"] == {"rtol": 1e-9, "atol": 1e-12, "pixel_tolerance": 8, "max_differing_pixels": 0.001}


def test_memory_address_in_a_repr_is_reproduced_and_the_rule_named():
    report, cell = compare_one_output(
        "model", result("<__main__.Model object at 0x7f3a2c1b9d90>"),
        result("<__main__.Model object at 0x7fe01d2e4410>"))
    assert report["verdict"] == "reproduced"
    assert cell["status"] == "identical"
    assert cell["rules"] == ["memory addresses"]


def test_only_the_rules_that_were_needed_are_named():
    # Both sides end in the same trailing spaces; only the address differs.
    _, cell = compare_one_output(
        "f", result("<function f at 0x7f00000001>   \n"), result("<function f at 0x7f00000002>   \n"))
    assert cell["rules"] == ["memory addresses"]


def test_float_noise_is_reproduced_with_differences():
    report, cell = compare_one_output("0.1 + 0.2", result("0.30000000000000004"), result("0.3"))
    assert report["verdict"] == "reproduced_with_differences"
    assert cell["status"] == "within_tolerance"
    assert cell["rules"] == ["numbers within tolerance"]
    assert report["summary"]["within_tolerance"] == 1
    assert "-0.30000000000000004" in cell["outputs"][0]["diff"]


def test_numpy_array_with_float_noise_and_realigned_columns():
    stored = "array([0.1                , 0.30000000000000004, 1e-05              ])"
    fresh = "array([0.1, 0.3, 1.0000000000000001e-05])"
    report, cell = compare_one_output("a", result(stored), result(fresh))
    assert report["verdict"] == "reproduced_with_differences"
    assert cell["rules"] == ["numbers within tolerance", "column alignment (spaces)"]


def test_a_float_beyond_tolerance_is_not_reproduced_with_a_diff():
    report, cell = compare_one_output("mean", result("1.0"), result("1.1"))
    assert report["verdict"] == "not_reproduced"
    assert cell["status"] == "differs"
    output = cell["outputs"][0]
    assert output["status"] == "differs"
    assert (output["expected"], output["actual"]) == ("1.0", "1.1")
    assert "-1.0\n+1.1" in output["diff"]
    assert "hint" not in cell


def test_an_edited_stored_output_is_not_reproduced():
    report, _ = compare_one_output(
        "print(f'accuracy: {acc:.2f}')", stdout("accuracy: 0.99 (best model)\n"), stdout("accuracy: 0.87\n"))
    assert report["verdict"] == "not_reproduced"
    assert report["summary"]["differ"] == 1


def test_unseeded_random_numbers_are_not_reproduced_and_hinted():
    report, cell = compare_one_output(
        "np.random.rand(5)",
        result("array([0.5488135 , 0.71518937, 0.60276338, 0.54488318, 0.4236548 ])"),
        result("array([0.64589411, 0.43758721, 0.891773  , 0.96366276, 0.38344152])"))
    assert report["verdict"] == "not_reproduced"
    assert cell["hint"] == RANDOM_NUMBERS_HINT


def test_integers_differing_by_one_differ():
    _, cell = compare_one_output("len(df)", result("1000"), result("1001"))
    assert cell["status"] == "differs"
    assert "hint" not in cell  # no tolerance would help: integers are exact


def test_small_float_difference_beyond_tolerance_suggests_a_tolerance():
    _, cell = compare_one_output("loss", stdout("loss: 0.6931472\n"), stdout("loss: 0.6931473\n"))
    assert cell["status"] == "differs"
    assert "rtol=1e-06" in cell["hint"]


def test_a_per_version_tolerance_accepts_what_the_default_rejects():
    stored, fresh = stdout("loss: 0.6931472\n"), stdout("loss: 0.6931473\n")
    loose = Tolerance.from_dict({"rtol": 1e-6}, default=Tolerance())
    report, _ = compare_one_output("loss", stored, fresh, tolerance=loose)
    assert report["verdict"] == "reproduced_with_differences"
    assert report["tolerance"]["rtol"] == 1e-6


def test_nan_and_inf_compare_as_numbers():
    _, cell = compare_one_output("s", result("[nan, inf, -inf, 2.5e-10]"), result("[NaN, inf, -inf, 2.5e-10]"))
    assert cell["status"] == "within_tolerance"
    _, cell = compare_one_output("s", result("[nan, inf]"), result("[nan, -inf]"))
    assert cell["status"] == "differs"


def test_changed_words_around_equal_numbers_differ():
    _, cell = compare_one_output("s", stdout("x1 = 3\n"), stdout("x2 = 3\n"))
    assert cell["status"] == "differs"


# --- harmless normalisations -----------------------------------------------------------------------------------


def test_tqdm_progress_bar_with_carriage_returns_is_reproduced():
    # Saved by JupyterLab with the carriage returns already applied; nbclient keeps every intermediate state.
    stored = "100%|██████████| 10/10 [00:01<00:00,  9.81it/s]\n"
    fresh = ("\r  0%|          | 0/10 [00:00<?, ?it/s]"
             "\r 50%|█████     | 5/10 [00:00<00:00,  9.70it/s]"
             "\r100%|██████████| 10/10 [00:01<00:00,  9.79it/s]\n")
    report, cell = compare_one_output("for i in tqdm(range(10)): ...", stderr(stored), stderr(fresh))
    assert report["verdict"] == "reproduced"
    assert cell["rules"] == ["progress bars (carriage returns)", "progress rates and times"]


def test_backspaces_are_applied_like_a_terminal():
    report, cell = compare_one_output("spinner()", stdout("done\n"), stdout("|\b/\b-\bdone\n"))
    assert report["verdict"] == "reproduced"
    assert cell["rules"] == ["progress bars (carriage returns)"]


def test_timestamps_are_normalised():
    report, cell = compare_one_output(
        "print(datetime.now()); datetime.now()",
        stdout("Run started 2024-01-15 12:30:45.123456 (Mon Jan 15 12:30:45 2024)\n"),
        stdout("Run started 2025-03-02 08:01:02.000001 (Sun Mar  2 08:01:02 2025)\n"))
    assert report["verdict"] == "reproduced"
    assert cell["rules"] == ["timestamps"]
    report, cell = compare_one_output("datetime.now()", result("datetime.datetime(2024, 1, 15, 12, 30, 45, 123456)"),
                                      result("datetime.datetime(2025, 3, 2, 8, 1, 2, 1)"))
    assert cell["rules"] == ["timestamps"]


def test_temporary_paths_are_normalised():
    report, cell = compare_one_output(
        "print(tempfile.mkdtemp())", stdout("/var/folders/x3/k2j4h5_d0s/T/tmpab12cd_e\n"), stdout("/tmp/tmp9z8y7x6w\n"))
    assert report["verdict"] == "reproduced"
    assert cell["rules"] == ["temporary paths"]


def test_installation_paths_are_normalised():
    report, cell = compare_one_output(
        "np", result("<module 'numpy' from '/Users/ana/.venv/lib/python3.11/site-packages/numpy/__init__.py'>"),
        result("<module 'numpy' from '/opt/conda/lib/python3.11/site-packages/numpy/__init__.py'>"))
    assert report["verdict"] == "reproduced"
    assert cell["rules"] == ["installation paths"]


def test_ansi_codes_and_trailing_whitespace_are_normalised():
    report, cell = compare_one_output(
        "print(colored('OK', 'green'))", stdout("\x1b[32mOK\x1b[0m   \r\n"), stdout("OK\n"))
    assert report["verdict"] == "reproduced"
    # The "\r" of "\r\n" is already undone by the terminal rendering, so "line endings" is not needed.
    assert cell["rules"] == ["ANSI codes", "trailing whitespace"]


def test_timing_measurements_are_normalised():
    report, cell = compare_one_output(
        "%timeit f()",
        stdout("1.23 ms ± 45.6 µs per loop (mean ± std. dev. of 7 runs, 1,000 loops each)\n"),
        stdout("2.01 ms ± 5.6 µs per loop (mean ± std. dev. of 7 runs, 100 loops each)\n"))
    assert report["verdict"] == "reproduced"
    assert cell["rules"] == ["timing measurements"]


def test_set_literals_compare_regardless_of_order():
    report, cell = compare_one_output("set(fruit)", result("{'pear', 'apple', 'fig, dried'}"),
                                      result("{'apple', 'fig, dried', 'pear'}"))
    assert report["verdict"] == "reproduced"
    assert cell["rules"] == ["unordered collection (set and dict order)"]


def test_stdout_split_into_several_stream_outputs_is_the_same_stream():
    report = run(notebook(code("for i in range(3): print(i)", stdout("0\n1\n2\n"), count=1)),
                 notebook(code("for i in range(3): print(i)", stdout("0\n"), stdout("1\n"), stdout("2\n"), count=1)))
    assert report["verdict"] == "reproduced"
    assert report["cells"][0]["rules"] == []


def test_widget_model_ids_are_ignored():
    def widget(model_id):
        return display({"application/vnd.jupyter.widget-view+json":
                        {"model_id": model_id, "version_major": 2, "version_minor": 0},
                        "text/plain": "IntSlider(value=5)"})
    report, cell = compare_one_output("IntSlider(5)", widget("4f1c0a2e9b8d"), widget("77aa00bb11cc"))
    assert report["verdict"] == "reproduced"
    assert cell["rules"] == ["widget model ids"]


def test_json_output_numbers_within_tolerance():
    report, cell = compare_one_output(
        "JSON(stats)", display({"application/json": {"mean": 0.30000000000000004, "n": 10}}),
        display({"application/json": {"mean": 0.3, "n": 10}}))
    assert report["verdict"] == "reproduced_with_differences"
    assert cell["rules"] == ["numbers within tolerance"]
    report, cell = compare_one_output(
        "JSON(stats)", display({"application/json": {"n": 10}}), display({"application/json": {"n": 11}}))
    assert cell["status"] == "differs"


def test_svg_ids_are_renamed_consistently():
    def svg(clip_id, y):
        return display({"image/svg+xml": f'<svg><defs><clipPath id="{clip_id}"><rect/></clipPath></defs>'
                                         f'<path clip-path="url(#{clip_id})" d="M 0 {y} L 10 10"/></svg>'})
    report, cell = compare_one_output("plot()", svg("p3e1f0a9c", "5"), svg("p77b2c4d1", "5"))
    assert report["verdict"] == "reproduced"
    assert cell["rules"] == ["SVG ids"]
    report, cell = compare_one_output("plot()", svg("p3e1f0a9c", "5"), svg("p77b2c4d1", "6"))
    assert cell["status"] == "differs"


# --- HTML ----------------------------------------------------------------------------------------------------

DATAFRAME_HTML = """<div><style scoped>#T_{id} td {{ color: red }}</style>
<table border="1" class="dataframe" id="T_{id}">
  <thead><tr style="text-align: right;"><th></th><th>height</th><th>weight</th></tr></thead>
  <tbody>
    <tr><th>0</th><td>1.72</td><td>{weight}</td></tr>
  </tbody>
</table></div>"""


def test_html_table_with_other_markup_but_the_same_text_matches():
    stored = DATAFRAME_HTML.format(id="a1b2c", weight="68.0")
    fresh = DATAFRAME_HTML.format(id="9f8e7", weight="68.0").replace("\n  ", "").replace('border="1" ', "")
    report, cell = compare_one_output("df", display({"text/html": stored}), display({"text/html": fresh}))
    assert report["verdict"] == "reproduced"
    assert cell["rules"] == ["HTML compared by its text"]


def test_html_table_with_another_number_differs_and_shows_its_text():
    stored = DATAFRAME_HTML.format(id="a1b2c", weight="68.0")
    fresh = DATAFRAME_HTML.format(id="a1b2c", weight="71.5")
    _, cell = compare_one_output("df", display({"text/html": stored}), display({"text/html": fresh}))
    assert cell["status"] == "differs"
    output = cell["outputs"][0]
    assert output["expected"] == "| | height | weight\n| 0 | 1.72 | 68.0"
    assert "+| 0 | 1.72 | 71.5" in output["diff"]


def test_each_stored_mime_type_is_compared():
    stored = display({"text/html": "<b>42</b>", "text/plain": "42"})
    fresh = display({"text/html": "<b>42</b>", "text/plain": "43"})
    _, cell = compare_one_output("df", stored, fresh)
    assert [(o["mime"], o["status"]) for o in cell["outputs"]] == [("text/html", "identical"),
                                                                   ("text/plain", "differs")]


def test_a_stored_mime_type_missing_from_the_fresh_output_differs():
    # e.g. the inline backend was not active: the figure comes back as its text/plain repr only.
    picture = png(plot_with_line())
    _, cell = compare_one_output("plt.gcf()", figure(picture),
                                 display({"text/plain": "<Figure size 640x480 with 1 Axes>"}))
    assert cell["status"] == "differs"
    assert [(o["mime"], o["status"]) for o in cell["outputs"]] == [("image/png", "missing"), ("text/plain",
                                                                                              "identical")]
    assert "expected_image" in cell["outputs"][0]


def test_a_new_mime_type_in_the_fresh_output_is_no_regression():
    report, _ = compare_one_output("df", display({"text/plain": "42"}),
                                      display({"text/plain": "42", "text/html": "<b>42</b>"}))
    assert report["verdict"] == "reproduced"


def test_unknown_mime_types_must_match_exactly_after_normalisation():
    _, cell = compare_one_output("js", display({"application/javascript": "draw(1.0)"}),
                                      display({"application/javascript": "draw(1.0000000000001)"}))
    assert cell["status"] == "differs"


# --- images --------------------------------------------------------------------------------------------------


def test_same_picture_encoded_differently_is_identical():
    picture = plot_with_line()
    fast, small = png(picture, compress_level=1), png(picture, compress_level=9, optimize=True)
    assert fast != small
    report, cell = compare_one_output("plot()", figure(fast), figure(small))
    assert report["verdict"] == "reproduced"
    assert cell["outputs"][0]["status"] == "identical"
    assert cell["rules"] == ["images compared by pixels"]


def test_slight_antialiasing_changes_are_within_tolerance():
    picture = plot_with_line()
    noisy = picture.point(lambda value: max(0, value - 3))
    report, cell = compare_one_output("plot()", figure(png(picture)), figure(png(noisy)))
    assert report["verdict"] == "reproduced_with_differences"
    assert cell["outputs"][0]["status"] == "within_tolerance"
    assert cell["rules"] == ["image pixels within tolerance"]


def test_a_shifted_line_differs_with_a_difference_image():
    report, cell = compare_one_output("plot()", figure(png(plot_with_line())), figure(png(plot_with_line(offset=4))))
    assert report["verdict"] == "not_reproduced"
    image_output = cell["outputs"][0]
    assert image_output["mime"] == "image/png"
    assert image_output["status"] == "differs"
    assert image_output["differing_pixels"] > 0.01
    difference = Image.open(io.BytesIO(base64.b64decode(image_output["difference_image"])))
    assert difference.size == (100, 80)
    assert (220, 0, 0) in {color for _, color in difference.convert("RGB").getcolors(10_000)}
    for key in ("expected_image", "actual_image"):
        assert Image.open(io.BytesIO(base64.b64decode(image_output[key]))).size == (100, 80)


def test_a_resized_figure_differs():
    _, cell = compare_one_output("plot()", figure(png(plot_with_line())),
                                      figure(png(plot_with_line(size=(120, 80)))))
    output = cell["outputs"][0]
    assert output["status"] == "differs"
    assert "100×80 to 120×80" in output["note"]


def test_malformed_base64_image_differs_without_an_exception():
    _, cell = compare_one_output("plot()", figure(png(plot_with_line())), figure("iVBORw0KGgo*not base64*"))
    output = cell["outputs"][0]
    assert output["status"] == "differs"
    assert "re-executed image/png image could not be compared: it is not valid base64" in output["note"]


def test_bytes_that_are_not_an_image_differ_without_an_exception():
    garbage = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40).decode()
    _, cell = compare_one_output("plot()", figure(png(plot_with_line())), figure(garbage))
    assert cell["outputs"][0]["status"] == "differs"
    assert "Pillow cannot read it" in cell["outputs"][0]["note"]


def test_giant_images_are_not_decoded(monkeypatch):
    monkeypatch.setattr(limits, "MAX_IMAGE_PIXELS", 1_000)
    _, cell = compare_one_output("plot()", figure(png(plot_with_line())), figure(png(plot_with_line(offset=1))))
    assert cell["outputs"][0]["status"] == "differs"
    assert "the submitted image is 100×80 pixels, more than the 1,000 pixels" in cell["outputs"][0]["note"]


def test_a_missing_figure_is_reported_with_the_stored_picture():
    source = "plt.plot(x); plt.show()"
    report = run(notebook(code(source, figure(png(plot_with_line())), count=1)), notebook(code(source, count=1)))
    cell = report["cells"][0]
    assert report["verdict"] == "not_reproduced"
    assert [(o["mime"], o["status"]) for o in cell["outputs"]] == [("image/png", "missing"), ("text/plain", "missing")]
    assert "expected_image" in cell["outputs"][0]


# --- streams, errors, tags -----------------------------------------------------------------------------------


def test_an_unexpected_extra_output_differs():
    report = run(notebook(code("show()", stdout("done\n"), count=1)),
                 notebook(code("show()", stdout("done\n"), display({"text/plain": "<Axes: >"}), count=1)))
    assert report["verdict"] == "not_reproduced"
    assert [o["status"] for o in report["cells"][0]["outputs"]] == ["identical", "unexpected"]


def test_a_new_deprecation_warning_on_stderr_is_tolerated():
    warning = ("/tmp/ipykernel_4321/2519836412.py:3: DeprecationWarning: `np.float` is a deprecated alias\n"
               "  x = np.float(3)\n")
    report = run(notebook(code("x = np.float(3); print(x)", stdout("3.0\n"), count=1)),
                 notebook(code("x = np.float(3); print(x)", stderr(warning), stdout("3.0\n"), count=1)))
    assert report["verdict"] == "reproduced_with_differences"
    cell = report["cells"][0]
    assert cell["status"] == "within_tolerance"
    assert cell["rules"] == ["stderr differences"]
    assert cell["outputs"][-1]["note"] == "stderr output only in the re-executed notebook."


def test_a_kernel_temp_path_in_a_warning_is_harmless():
    def warning(pid, name):
        return stderr(f"/tmp/ipykernel_{pid}/{name}.py:3: UserWarning: small sample\n")
    report = run(notebook(code("fit()", warning(4321, 2519836412), count=1)),
                 notebook(code("fit()", warning(77, 2519836412), count=1)))
    assert report["verdict"] == "reproduced"
    assert report["cells"][0]["rules"] == ["temporary paths"]


def test_errors_compare_name_and_message_not_traceback():
    stored = error("ZeroDivisionError", "division by zero", ["\x1b[0;31m/home/ana/nb.ipynb line 1\x1b[0m"])
    fresh = error("ZeroDivisionError", "division by zero", ["/tmp/ipykernel_77/123.py line 1"])
    report = run(notebook(code("1/0", stored, count=1, tags=["raises-exception"])),
                 notebook(code("1/0", fresh, count=1, tags=["raises-exception"])))
    assert report["cells"][0]["outputs"][0]["status"] == "identical"


def test_a_different_error_message_differs():
    _, cell = compare_one_output("load()", error("KeyError", "'height'"), error("KeyError", "'weight'"))
    assert cell["status"] == "differs"
    assert cell["outputs"][0]["expected"] == "KeyError: 'height'"


def test_raises_exception_tag_is_honoured():
    submitted = notebook(code("int('x')", error("ValueError", "invalid literal for int() with base 10: 'x'"),
                              count=1, tags=["raises-exception"]),
                         code("print('after')", stdout("after\n"), count=2))
    report = run(submitted, submitted)
    assert report["verdict"] == "reproduced"
    assert [cell["status"] for cell in report["cells"]] == ["expected_error", "identical"]
    assert report["summary"]["expected_errors"] == 1
    assert any("raises-exception" in note for note in report["notes"])


def test_a_raises_exception_cell_that_no_longer_raises_differs():
    report = run(notebook(code("int('x')", error("ValueError", "bad"), count=1, tags=["raises-exception"])),
                 notebook(code("int('x')", count=1, tags=["raises-exception"])))
    cell = report["cells"][0]
    assert cell["status"] == "differs"
    assert "raised no error" in cell["hint"]
    assert report["verdict"] == "not_reproduced"


@pytest.mark.parametrize("tag", ["nbarchive-skip-compare", "nbval-ignore-output"])
def test_skipped_cells_are_listed_and_only_soften_the_verdict(tag):
    differing = run(notebook(code("time.time()", result("1700000000.1"), count=1, tags=[tag])),
                    notebook(code("time.time()", result("1800000000.2"), count=1, tags=[tag])))
    assert differing["verdict"] == "reproduced_with_differences"
    cell = differing["cells"][0]
    assert (cell["status"], cell["status_if_compared"], cell["tags"]) == ("skipped", "differs", [tag])
    assert differing["summary"]["skipped"] == 1
    assert any("tagged to skip comparison" in note and "differ" in note for note in differing["notes"])

    same = notebook(code("1 + 1", result("2"), count=1, tags=[tag]))
    assert run(same, same)["verdict"] == "reproduced"


def test_missing_stored_outputs_are_reported():
    submitted = notebook(code("x = 1", count=1), code("df.describe()"), code("print(x)", stdout("1\n"), count=3))
    executed = notebook(code("x = 1", count=1), code("df.describe()", result("count 3", count=2), count=2),
                        code("print(x)", stdout("1\n"), count=3))
    report = run(submitted, executed)
    assert [cell["status"] for cell in report["cells"]] == ["identical", "no_stored_output", "identical"]
    assert report["verdict"] == "reproduced_with_differences"
    assert report["summary"]["no_stored_output"] == 1
    assert any("Cells 1 have no stored outputs" in note for note in report["notes"])


def test_a_notebook_saved_without_outputs_says_there_is_nothing_to_compare():
    report = run(notebook(code("print(1)")), notebook(code("print(1)", stdout("1\n"), count=1)))
    assert any("no stored outputs: there is nothing to compare" in note for note in report["notes"])


def test_out_of_order_execution_counts_are_noted():
    submitted = notebook(code("a = 1", count=4), code("b = 2", count=2), code("c = 3", count=5),
                         code("d = 4", count=5))
    report = run(submitted, submitted)
    assert ("Execution counts of the submitted notebook are not in order (cells 1, 3): it was not run top to "
            "bottom.") in report["notes"]


def test_cells_after_an_execution_stop_are_not_executed():
    submitted = notebook(code("import data", count=1), code("df = data.load()", count=2),
                         code("df.head()", result("   a\n0  1", count=3), count=3), code("x = 1", count=4))
    executed = notebook(code("import data", count=1),
                        code("df = data.load()", error("FileNotFoundError", "data.csv"), count=2),
                        code("df.head()"), code("x = 1"))
    report = run(submitted, executed)
    assert [cell["status"] for cell in report["cells"]] == ["identical", "differs", "not_executed", "not_executed"]
    assert report["verdict"] == "not_reproduced"
    assert report["summary"]["not_executed"] == 2
    assert ("Execution stopped at cell 1 with an error; cells 2, 3 were not executed in the fresh run."
            in report["notes"])


def test_a_shorter_executed_notebook_marks_the_rest_not_executed():
    submitted = notebook(code("a = 1", count=1), code("print(a)", stdout("1\n"), count=2))
    executed = notebook(code("a = 1", count=1))
    report = run(submitted, executed)
    assert [cell["status"] for cell in report["cells"]] == ["identical", "not_executed"]
    assert any("has 2 cells and the executed one 1" in note for note in report["notes"])


def test_blank_cells_are_not_reported_as_not_executed():
    submitted = notebook(code("   ", count=None), code("print(1)", stdout("1\n"), count=1))
    report = run(submitted, submitted)
    assert report["verdict"] == "reproduced"


# --- caps and odd notebooks ----------------------------------------------------------------------------------


def test_huge_outputs_are_compared_by_hash_and_capped_in_the_report(monkeypatch):
    monkeypatch.setattr(limits, "MAX_COMPARED_CHARS", 1_000)
    _, cell = compare_one_output("print(big)", stdout("a" * 5_000), stdout("a" * 4_999 + "b"))
    output = cell["outputs"][0]
    assert output["status"] == "differs"
    assert "compared by SHA-256" in output["note"]

    monkeypatch.setattr(limits, "REPORT_TEXT_CHARS", 100)
    _, cell = compare_one_output("print(big)", stdout("x" * 500), stdout("y" * 500))
    assert len(cell["outputs"][0]["expected"]) < 200
    assert cell["outputs"][0]["expected"].endswith("[cut: 500 characters in all]")


def test_the_diff_starts_near_the_first_difference(monkeypatch):
    monkeypatch.setattr(limits, "DIFF_INPUT_LINES", 50)
    lines = [f"epoch {i}: done" for i in range(1_000)]
    changed = [*lines[:900], "epoch 900: failed", *lines[901:]]
    _, cell = compare_one_output("train()", stdout("\n".join(lines)), stdout("\n".join(changed)))
    diff = cell["outputs"][0]["diff"]
    assert "-epoch 900: done\n+epoch 900: failed" in diff
    assert "[only lines 898 to 947 were diffed]" in diff


def test_many_small_stream_outputs_are_joined():
    printed = [stdout(f"{i}\n") for i in range(5_000)]
    submitted = notebook(code("for i in range(5000): print(i)", stdout("".join(f"{i}\n" for i in range(5_000))),
                              count=1))
    report = run(submitted, notebook(code("for i in range(5000): print(i)", *printed, count=1)))
    assert report["verdict"] == "reproduced"


def test_long_sources_are_cut():
    long_source = "x = 1\n" * 1_000
    report = run(notebook(code(long_source, count=1)), notebook(code(long_source, count=1)))
    assert len(report["cells"][0]["source"]) == 2_000


def test_odd_but_valid_notebooks_do_not_raise():
    submitted = notebook(code(["print(", "1)"], stdout(["1", "\n"]), count=1), code("y"))
    submitted["cells"][1]["metadata"]["tags"] = "not-a-list"
    del submitted["cells"][1]["outputs"]
    executed = notebook(code("print(1)", stdout("1\n"), count=1), code("y", display({}), count=2))
    report = run(submitted, executed)
    assert report["cells"][0]["status"] == "identical"
    assert report["cells"][1]["tags"] == []
    assert run({}, {})["verdict"] == "reproduced"


# --- Tolerance -----------------------------------------------------------------------------------------------


def test_tolerance_overrides_apply_over_the_default():
    default = Tolerance(rtol=1e-8)
    assert Tolerance.from_dict(None, default=default) is default
    assert Tolerance.from_dict({}, default=default) == default
    override = Tolerance.from_dict({"atol": 1e-6, "pixel_tolerance": 20}, default=default)
    assert override == Tolerance(rtol=1e-8, atol=1e-6, pixel_tolerance=20, max_differing_pixels=0.001)
    assert Tolerance.from_dict({"rtol": 0}, default=default).rtol == 0.0


@pytest.mark.parametrize(("values", "message"), [
    ({"rtl": 1e-6}, ("Unknown tolerance setting(s) 'rtl'; the settings are atol, max_differing_pixels, "
                    "pixel_tolerance, rtol.")),
    ({"rtol": "1e-6"}, "'rtol' must be a finite number of at least 0, not '1e-6'"),
    ({"atol": -1.0}, "'atol' must be a finite number of at least 0"),
    ({"rtol": float("nan")}, "'rtol' must be a finite number"),
    ({"rtol": True}, "'rtol' must be a finite number"),
    ({"pixel_tolerance": 300}, "'pixel_tolerance' must be a whole number from 0 to 255, not 300"),
    ({"pixel_tolerance": 8.5}, "'pixel_tolerance' must be a whole number"),
    ({"max_differing_pixels": 2}, "'max_differing_pixels' is a fraction from 0 to 1, not 2.0"),
    (["rtol", 1e-6], "must be a mapping of setting names to values, not list"),
])
def test_bad_tolerance_overrides_are_refused_clearly(values, message):
    with pytest.raises(ValueError) as refused:
        Tolerance.from_dict(values, default=Tolerance())
    assert message in str(refused.value)
