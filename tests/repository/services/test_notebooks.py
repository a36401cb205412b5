"""Notebook validation as a submitter meets it: what is refused, with which message, and what is accepted."""

import io
import json

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from repository.errors import InvalidNotebook
from repository.runners.base import SandboxLimits
from repository.services.notebooks import never_executed, notebook_validate
from repository.services.verification import default_tolerance, notebook_verify


def raw(notebook) -> bytes:
    return json.dumps(notebook).encode()


def executed_notebook():
    return new_notebook(cells=[new_markdown_cell("# Title"), new_code_cell(
        "print(1)", execution_count=1, outputs=[new_output("stream", name="stdout", text="1\n")])])


def test_a_lone_surrogate_anywhere_is_refused_with_where_it_is():
    notebook = executed_notebook()
    text = raw(notebook).replace(b'"print(1)"', b'"print(\\"\\ud83d\\")"')  # half of an emoji, escaped in JSON

    with pytest.raises(InvalidNotebook) as refused:
        notebook_validate(io.BytesIO(text))

    assert "lone UTF-16 surrogate" in refused.value.detail
    assert "cells/1/source" in refused.value.detail


def test_a_complete_surrogate_pair_is_just_an_emoji():
    text = raw(executed_notebook()).replace(b'"print(1)"', b'"print(\\"\\ud83d\\ude00\\")"')

    document = notebook_validate(io.BytesIO(text))

    assert document["cells"][1]["source"] == 'print("\U0001F600")'


def test_a_notebook_whose_code_never_ran_is_never_executed():
    assert never_executed(new_notebook(cells=[new_code_cell("x = 1"), new_code_cell("print(x)")]))
    assert not never_executed(executed_notebook())
    # A cell that ran without printing has its execution count: that is a result.
    assert not never_executed(new_notebook(cells=[new_code_cell("x = 1", execution_count=1)]))
    # Nothing to run at all is not "never executed" either.
    assert not never_executed(new_notebook(cells=[new_markdown_cell("text"), new_code_cell("   ")]))


class RunnerThatMustNotRun:
    def run(self, spec):
        raise AssertionError("a never-executed notebook must be refused before it runs")


def test_a_never_executed_notebook_is_refused_before_running(tmp_path):
    (tmp_path / "nb.ipynb").write_bytes(raw(new_notebook(cells=[new_code_cell("import random\nrandom.random()")])))

    verification = notebook_verify(workdir=tmp_path, notebook_path="nb.ipynb", runner=RunnerThatMustNotRun(),
                                   tolerance=default_tolerance(), limits=SandboxLimits())

    assert verification.verdict == "invalid_notebook"
    assert "never executed" in verification.message
