"""How far a GitLab job's result can be trusted, judged from what the notebook cannot write.

In the CI job the collector (job.py, nbclient) and the kernel share one container, and the job's artifacts (`out/`)
are whatever is in that folder when the job ends. With a shared uid (the image's user is not root) the notebook can
write them itself: a `status.json` saying `completed`, the submitted notebook as `executed.ipynb`, and an
`environment.json` claiming any isolation. So the server decides nothing from the artifacts about how far the kernel
was kept apart, and does not take a favourable result from a job it cannot trust:

- The isolation the job achieved is the FIRST `nbarchive: kernel isolation: <level>` line of the job's log (its
  trace). job.py prints it before it fetches an input or starts the kernel, so no line of the notebook can come
  before it; a notebook that prints (or, sharing the uid, writes into the job's output) the same line later only adds
  a line that is ignored. No such line in the log's head: `unknown`.
- Only a favourable outcome (`completed`: the notebook ran to the end, so the comparison may find it reproduced) is
  checked. A failure (`execution_failed`, `timed_out`, `resource_limit`, `unsupported_image`) stands whatever the
  isolation: a notebook that forges its own failure only harms itself, and the report shows the isolation (with a
  warning when shared).
- A favourable outcome is refused (the run ends `error`, with a message for the operator; never a verdict) when
  * the job failed while its artifacts say the notebook completed: job.py exits 0 exactly when it wrote
    `completed`, so the two disagree only when something else wrote the artifacts (a notebook sharing the job's uid,
    which also makes the driver's own writes fail) or the job broke after writing them. Either way the artifacts
    cannot be trusted; `error` rather than `execution_failed` because a broken job is the operator's problem, and
    nbarchive cannot tell which of the two it was;
  * the artifacts claim another isolation than the job's log: they were not written by the driver alone;
  * the isolation is `unknown`: the job never said;
  * the isolation is `shared-uid`, unless the operator accepts such verdicts (GITLAB_ALLOW_SHARED_UID); then the
    verdict stands and the report warns that the notebook could have tampered with it.

What this cannot catch: the driver runs with the image's own python3, and the image is the author's choice. An image
built to lie (a python3 that prints the marker and writes the artifacts itself) is out of reach of anything the job
does; the report says the results were collected by the image's Python (COLLECTOR).
"""

import re

from repository.gitlab.artifacts import KERNEL_ISOLATION_LEVELS

TRACE_HEAD_BYTES = 256 * 1024  # the runner's own lines before the script's (pulling the image, the checkout) fit
# job.py's line, alone on its line; GitLab may put a timestamp and a stream tag before it (FF_TIMESTAMPS).
ISOLATION_LINE = re.compile(r"^(?:\d{4}-\d\d-\d\dT\S+ \S+ )?nbarchive: kernel isolation: (?P<level>[a-z+-]+)\r?$",
                            re.MULTILINE)
# The kernel under a uid of its own: it cannot write out/ or reach the collector.
ISOLATED = ("separate-uid+pidns", "separate-uid")
COLLECTOR = ("the pinned image's own python3, inside the CI job beside the kernel: the image is the author's "
             "choice, so the author controls the program that collected these results")
OPERATOR_HELP = ("For the administrators: run the verification project's CI jobs as root (GitLab's Docker "
                 "executor does so by default; an image whose USER is not root, such as docker-stacks' jovyan, needs "
                 "the runner configured to run jobs as root), or use RUNNER=image, which runs the kernel outside any "
                 "job under a uid of its own; GITLAB_ALLOW_SHARED_UID=1 accepts such verdicts with a warning.")


def job_isolation(trace_head: str) -> str:
    """The isolation the job said it achieved before the notebook could say anything: the first marker line."""
    found = ISOLATION_LINE.search(trace_head)
    level = found.group("level") if found else ""
    return level if level in KERNEL_ISOLATION_LEVELS else "unknown"


def refusal(*, isolation: str, job_status: str, claimed_outcome, claimed_isolation: str,
            allow_shared_uid: bool) -> str:
    """Why a favourable result of this job cannot be accepted ("" when it can)."""
    if job_status != "success" and claimed_outcome == "completed":
        return (f"The GitLab job ended '{job_status}', yet its artifacts say the notebook ran to the end: the job's "
                "script exits with success exactly when it wrote that, so the artifacts were written by something "
                "else (the notebook, when it shares the job's uid) or the job broke after writing them. The result "
                f"cannot be trusted and was not accepted (kernel isolation: {isolation}).")
    if claimed_isolation != isolation:
        return (f"The job's log says the kernel ran with isolation '{isolation}', its artifacts claim "
                f"'{claimed_isolation}': they were not written by the job's script alone, so the result cannot be "
                "trusted and was not accepted.")
    if isolation == "unknown":
        return ("The job's log does not say how far the kernel was kept from the process that collected its results "
                "(no 'nbarchive: kernel isolation' line where the job's script prints it first), so the result "
                "cannot be trusted and was not accepted.")
    if isolation == "shared-uid" and not allow_shared_uid:
        return ("The notebook ran to the end, but the GitLab job could not run the kernel under another user than "
                "the process that collected its results (kernel isolation: shared-uid; the image's user is not root, "
                "or the job may not switch uid), so the notebook could have written this result itself; it was not "
                "accepted. " + OPERATOR_HELP)
    return ""
