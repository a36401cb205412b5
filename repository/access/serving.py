"""What the routes that hand out a published version's bytes or notebook content do when its files are closed to
the reader (repository.access.policy decides who reads them; this module only shapes the answer).

One status for every such route: **403**, for anonymous readers and signed-in ones alike. The landing page, the
DOI and the metadata are public in every access state, so a 404 would hide nothing; a 403 with the reason
("embargoed until 2027-03-01", "restricted") tells a reader what to do next (wait, or ask for access). Routes
that already hide whether something exists (drafts, runs of drafts, review requests) keep their 404s.

Caching: a response carrying closed files (served to an owner, a grantee, a share-link holder) must never be
kept by a shared cache that would hand it to the next reader, so such responses are `private, no-store`; only
files open to everyone may be cached publicly.
"""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render

from repository.access.policy import effective_access, files_are_open
from repository.models import ExecutionRun, FileAccess, Verdict, Version

PUBLIC_CACHE_CONTROL = "public, max-age=3600"
PRIVATE_CACHE_CONTROL = "private, no-store"

# What a public reproducibility report keeps of each cell when the reader may not read the files: where the
# cell is and how it compared, not what it computes or prints.
REPORT_CELL_KEYS = ("index", "cell_id", "execution_count", "status", "status_if_compared", "tags", "rules")


# The verdicts whose run message the comparison wrote from counts alone (services/verification.py's
# `_comparison_message`: "1 of 3 code cells produced different outputs."). Every other message may quote the
# notebook: the exception a cell raised ("Cell 4 raised ValueError: <what the data held>"), the kernel's last log
# line, why the notebook could not be read.
COUNTED_VERDICTS = frozenset({Verdict.REPRODUCED, Verdict.REPRODUCED_WITH_DIFFERENCES, Verdict.NOT_REPRODUCED})
RUN_MESSAGE_WITHHELD = ("How the run ended is told only to those who may read the files: its message may quote the "
                        "notebook.")


def run_message(run: ExecutionRun, *, files_readable: bool) -> str:
    """The run's message as a reader of its version's public pages (landing page, report, API) may see it."""
    if files_readable or not run.message:
        return run.message
    if run.status == ExecutionRun.Status.FINISHED and run.verdict in COUNTED_VERDICTS:
        return run.message
    return RUN_MESSAGE_WITHHELD


def closed_files_message(version: Version) -> str:
    """Why the reader gets no files, in one sentence."""
    if version.state == Version.State.WITHDRAWN:
        return "This version was withdrawn; its files are no longer served."
    if effective_access(version) == FileAccess.EMBARGOED and version.embargo_until:
        return (f"The files of this version are embargoed until {version.embargo_until:%Y-%m-%d}; the metadata "
                f"and the DOI are public.")
    return ("The files of this version are restricted: only its owners and the people they grant access can read "
            "them; the metadata and the DOI are public.")


def files_closed_response(request, version: Version) -> HttpResponse:
    """The HTML answer of a web route that would have served closed files."""
    response = render(request, "repository/files_closed.html",
                      {"version": version, "message": closed_files_message(version)}, status=403)
    response["Cache-Control"] = PRIVATE_CACHE_CONTROL
    return response


def files_cache_control(version: Version) -> str:
    """The Cache-Control of a response that carries the version's files or notebook content."""
    return PUBLIC_CACHE_CONTROL if files_are_open(version) else PRIVATE_CACHE_CONTROL


def private_unless_open(response, version: Version):
    """A page about a version whose content depends on who reads it while its files are closed (the landing page
    shows an owner the notebook's headings, the report its outputs, the API the download links): never kept by a
    shared cache, which would hand what it got for an owner to the next anonymous reader of the same URL."""
    if not files_are_open(version):
        response["Cache-Control"] = PRIVATE_CACHE_CONTROL
    return response


def report_without_content(report: dict | None) -> dict:
    """A reproducibility report with the verdict's reasoning (summary, notes, each cell's comparison status) but
    no cell source, outputs, diffs, images or hints (hints quote outputs), nor the kernel's own words on how the
    execution ended (an error message quotes what the notebook computed)."""
    report = dict(report or {})
    if isinstance(report.get("execution"), dict):
        report["execution"] = {key: value for key, value in report["execution"].items() if key != "message"}
    report["cells"] = [{key: cell[key] for key in REPORT_CELL_KEYS if key in cell}
                       for cell in report.get("cells", []) if isinstance(cell, dict)]
    return report
