"""Demo content for `python manage.py demo`: a small, really reproducible notebook and its data file."""

import contextlib
import io
import os
import tempfile

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

DATA_PATH = "data/measurements.csv"

INTRODUCTION = """# Thermal expansion of a copper rod

A demo deposit for nbarchive. The notebook reads the measured lengths of a rod at twelve temperatures from
`data/measurements.csv` and fits the linear expansion coefficient. It needs only the Python standard library."""

CELLS = [
    """import csv
import statistics

with open("data/measurements.csv", newline="") as handle:
    rows = [(float(row["temperature_K"]), float(row["length_mm"])) for row in csv.DictReader(handle)]
print(f"{len(rows)} measurements from {rows[0][0]:.0f} K to {rows[-1][0]:.0f} K")""",
    """temperatures, lengths = zip(*rows)
fit = statistics.linear_regression(temperatures, lengths)
alpha = fit.slope / lengths[0]
print(f"linear expansion coefficient: {alpha:.3e} 1/K")""",
]


def measurements_csv() -> bytes:
    lines = ["temperature_K,length_mm"]
    for step in range(12):
        temperature = 293 + 10 * step
        lines.append(f"{temperature},{1000 * (1 + 16.5e-6 * (temperature - 293)):.4f}")
    return ("\n".join(lines) + "\n").encode()


def notebook() -> bytes:
    """The notebook with the outputs its cells really print, obtained by running them on the demo data."""
    cells = [new_markdown_cell(INTRODUCTION)]
    namespace: dict = {}
    with tempfile.TemporaryDirectory() as workdir:
        os.makedirs(os.path.join(workdir, "data"))
        with open(os.path.join(workdir, DATA_PATH), "wb") as handle:
            handle.write(measurements_csv())
        previous = os.getcwd()
        os.chdir(workdir)
        try:
            for count, source in enumerate(CELLS, start=1):
                printed = io.StringIO()
                with contextlib.redirect_stdout(printed):
                    exec(compile(source, f"<cell {count}>", "exec"), namespace)  # our own fixed demo code
                cells.append(new_code_cell(source, execution_count=count,
                                           outputs=[new_output("stream", name="stdout", text=printed.getvalue())]))
        finally:
            os.chdir(previous)
    document = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    })
    return nbformat.writes(document).encode()
