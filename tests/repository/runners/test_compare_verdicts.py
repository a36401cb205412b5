"""Verdicts a careful reviewer would give: sets and dicts in hash order, and cells that ran without output.

What a moderator sees is asserted: the verdict, each cell's status and the rule or hint named in the report.
"""

import ast

import pytest

from repository.runners.compare import limits, literals
from tests.repository.runners.test_compare import (
    code,
    compare_one_output,
    display,
    notebook,
    result,
    run,
    stderr,
    stdout,
)

UNORDERED = "unordered collection (set and dict order)"

# --- sets and dicts whose order comes from hashing ----------------------------------------------------------------


@pytest.mark.parametrize(("stored", "fresh"), [
    ("{'b': 1, 'a': 2}\n", "{'a': 2, 'b': 1}\n"),
    ("{3, 1, 2}\n", "{1, 2, 3}\n"),
    ("[{'b': 1, 'a': 2}, {'y', 'x'}]\n", "[{'a': 2, 'b': 1}, {'x', 'y'}]\n"),
    ("counts: {'pear': 3, 'apple': {2, 1}}, total 6\n", "counts: {'apple': {1, 2}, 'pear': 3}, total 6\n"),
    ("{'b': np.float64(0.5), 'a': np.int64(2)}\n", "{'a': np.int64(2), 'b': np.float64(0.5)}\n"),
    ("{frozenset({'b', 'a'}), frozenset({'c'})}\n", "{frozenset({'c'}), frozenset({'a', 'b'})}\n"),
    ("{'naïve': 1, 'é': 2, 'a': 3}\n", "{'a': 3, 'naïve': 1, 'é': 2}\n"),
])
def test_a_printed_set_or_dict_in_another_order_is_reproduced_and_the_rule_named(stored, fresh):
    report, cell = compare_one_output("print(x)", stdout(stored), stdout(fresh))

    assert report["verdict"] == "reproduced"
    assert cell["status"] == "identical"
    assert cell["rules"] == [UNORDERED]


def test_a_pretty_printed_dict_over_several_lines_in_another_order_is_reproduced():
    stored = "{'zeta': 1,\n 'alpha': [3, 2],\n 'mid': {'q', 'p'}}"
    fresh = "{'mid': {'p', 'q'},\n 'zeta': 1,\n 'alpha': [3, 2]}"
    report, cell = compare_one_output("x", result(stored), result(fresh))

    assert report["verdict"] == "reproduced"
    assert cell["rules"] == [UNORDERED]


@pytest.mark.parametrize(("stored", "fresh"), [
    ("{'b': 1, 'a': 2}", "{'a': 1, 'b': 2}"),            # the same keys, their values swapped
    ("[3, 1, 2]", "[1, 2, 3]"),                          # lists keep their order
    ("{'a': (2, 1)}", "{'a': (1, 2)}"),                  # and so do tuples, inside a dict too
    ("{'a': [1, 2], 'b': [3]}", "{'a': [1], 'b': [2, 3]}"),
    ("{1, 2, 3}", "{1, 2, 4}"),
    ("{'a': 1, 'b': 2}", "{'a': 1, 'b': 2, 'c': 3}"),
])
def test_what_is_more_than_order_still_differs(stored, fresh):
    report, cell = compare_one_output("x", result(stored), result(fresh))

    assert report["verdict"] == "not_reproduced"
    assert cell["status"] == "differs"


def test_numbers_inside_a_reordered_dict_are_still_compared_within_tolerance():
    report, cell = compare_one_output("x", result("{'b': 0.30000000000000004, 'a': 1}"),
                                      result("{'a': 1, 'b': 0.3}"))

    assert report["verdict"] == "reproduced_with_differences"
    assert cell["status"] == "within_tolerance"
    assert cell["rules"] == [UNORDERED, "numbers within tolerance"]


def test_a_dict_in_the_same_order_is_not_named_as_reordered():
    # The rule rewrites neither side here beyond what both share; only the number needed a rule.
    report, cell = compare_one_output("x", result("{'b': 0.30000000000000004, 'a': 1}"),
                                      result("{'b': 0.3, 'a': 1}"))

    assert cell["status"] == "within_tolerance"
    assert cell["rules"] == ["numbers within tolerance"]


def test_a_set_of_reprs_that_python_cannot_parse_is_still_compared_regardless_of_order():
    report, cell = compare_one_output("x", result("{<Color.RED>, <Color.BLUE>}"),
                                      result("{<Color.BLUE>, <Color.RED>}"))

    assert report["verdict"] == "reproduced"
    assert cell["rules"] == [UNORDERED]


def test_angle_reprs_with_commas_are_not_split_into_pieces():
    # Split at every comma, these two different sets would sort into the same four pieces.
    report, _ = compare_one_output("x", result("{<P a=1, b=2>, <P a=3, b=4>}"),
                                   result("{<P a=1, b=4>, <P a=3, b=2>}"))

    assert report["verdict"] == "not_reproduced"


def test_a_dict_longer_than_the_parse_limit_is_compared_in_order(monkeypatch):
    monkeypatch.setattr(limits, "LITERAL_MAX_CHARS", 10)
    report, cell = compare_one_output("x", result("{'bravo': 1, 'alpha': 2}"), result("{'alpha': 2, 'bravo': 1}"))

    assert report["verdict"] == "not_reproduced"
    assert cell["status"] == "differs"


def test_parsing_is_bounded_whatever_the_text(monkeypatch):
    parsed = []
    real_parse = ast.parse

    def counting_parse(source, *args, **kwargs):
        parsed.append(len(source))
        return real_parse(source, *args, **kwargs)

    monkeypatch.setattr(literals.ast, "parse", counting_parse)
    hostile = "{'k', 'j'} " * 200_000 + "{" * 100_000 + "'a', 'b'" + "}" * 100_000
    sorted_text = literals.sort_unordered_collections(hostile)

    assert sum(max(size, 64) for size in parsed) <= limits.LITERAL_PARSE_BUDGET_CHARS + limits.LITERAL_MAX_CHARS
    assert sorted_text.startswith("{'j', 'k'} {'j', 'k'}")  # the first ones, within the budget, were sorted
    assert len(sorted_text) == len(hostile)


def test_sets_past_the_span_cap_are_compared_in_their_order(monkeypatch):
    monkeypatch.setattr(limits, "LITERAL_MAX_SPANS", 2)
    assert literals.sort_unordered_collections("{2, 1} {4, 3} {6, 5}") == "{1, 2} {3, 4} {6, 5}"
    report, _ = compare_one_output("x", result("{2, 1} {4, 3} {6, 5}"), result("{1, 2} {3, 4} {5, 6}"))
    assert report["verdict"] == "not_reproduced"


def test_text_is_parsed_never_evaluated(tmp_path):
    marker = tmp_path / "evaluated"
    text = f"{{__import__('pathlib').Path({str(marker)!r}).touch(), 2, 1}}"
    assert literals.sort_unordered_collections(text).startswith("{1, 2, __import__(")
    assert not marker.exists()


@pytest.mark.parametrize("text", [
    "{'a': 1, **rest}", "{x for x in y}", "{'b': f(x) + g(y), 'a': lambda: 1}", "{'a\\\n': 1, 'b': 2}",
    "{'a': '\ud800', 'b': 1}", "{'a': 1,\r 'b': 2}", "{" * 300 + "}" * 300, "{'b': 1, 'a': 2\x00}",
])
def test_odd_braces_are_left_alone_without_an_exception(text):
    assert literals.sort_unordered_collections(text) == text


# --- a cell that ran without output, and prints now ---------------------------------------------------------------


def test_a_cell_that_ran_without_output_and_prints_now_is_not_reproduced():
    submitted = notebook(code("x = 1", count=1), code("report(x)", count=2))
    executed = notebook(code("x = 1", count=1), code("report(x)", stdout("42 failures\n"), count=2))
    report = run(submitted, executed)

    assert report["verdict"] == "not_reproduced"
    cell = report["cells"][1]
    assert cell["status"] == "differs"
    assert [(o["status"], o.get("actual")) for o in cell["outputs"]] == [("unexpected", "42 failures\n")]
    assert "ran (execution count 2) and stored no output" in cell["hint"]
    assert report["summary"]["differ"] == 1 and report["summary"]["no_stored_output"] == 0
    assert ("Cells 1 ran in the submitted notebook (they have execution counts) but stored no output, and the "
            "fresh run produced some: they differ.") in report["notes"]


def test_a_cell_that_ran_without_output_and_shows_a_figure_now_is_not_reproduced():
    report = run(notebook(code("plot()", result("1", count=1), count=1), code("plt.show()", count=2)),
                 notebook(code("plot()", result("1", count=1), count=1),
                          code("plt.show()", display({"text/plain": "<Figure size 640x480 with 1 Axes>"}), count=2)))

    assert report["verdict"] == "not_reproduced"
    assert report["cells"][1]["status"] == "differs"


def test_a_cell_that_ran_without_output_and_now_only_warns_on_stderr_is_tolerated_by_name():
    report = run(notebook(code("x = 1", result("1", count=1), count=1), code("fit()", count=2)),
                 notebook(code("x = 1", result("1", count=1), count=1),
                          code("fit()", stderr("UserWarning: small sample\n"), count=2)))

    assert report["verdict"] == "reproduced_with_differences"
    cell = report["cells"][1]
    assert cell["status"] == "within_tolerance"
    assert cell["rules"] == ["stderr differences"]


def test_a_cell_that_ran_without_output_and_still_prints_nothing_is_identical():
    submitted = notebook(code("x = 1", count=1), code("print(x)", stdout("1\n"), count=2))
    assert run(submitted, submitted)["verdict"] == "reproduced"


def test_a_cell_never_run_in_the_submitted_notebook_only_softens_the_verdict():
    submitted = notebook(code("x = 1", count=1), code("print(x)"), code("print(2)", stdout("2\n"), count=3))
    executed = notebook(code("x = 1", count=1), code("print(x)", stdout("1\n"), count=2),
                        code("print(2)", stdout("2\n"), count=3))
    report = run(submitted, executed)

    assert report["verdict"] == "reproduced_with_differences"
    assert report["cells"][1]["status"] == "no_stored_output"
    assert any("Cells 1 have no stored outputs" in note for note in report["notes"])
