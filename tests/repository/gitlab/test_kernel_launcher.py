"""RUNNER=gitlab with files beside the notebook named like the modules the kernel starts from: started as
`python -m ipykernel_launcher` in the notebook's folder, the job's kernel ran an uploaded `ipykernel_launcher.py`
instead of ipykernel. The job now starts it from nbarchive's launcher in its own run folder (as the local and
image runners do, tests/repository/runners/test_kernel_start.py), and cells still import the helper modules
shipped beside the notebook.
"""

import io

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

from repository.models import Version
from repository.services.drafts import record_create
from repository.services.files import draft_file_upload
from repository.services.runs import run_execute, run_request
from tests.factories import IMAGE
from tests.repository.gitlab.test_runner import gitlab_env, marks, no_queue  # noqa: F401 - fixtures

HIJACK = b"import sys\nprint('hijacked', flush=True)\nprint('hijacked', file=sys.stderr, flush=True)\nsys.exit(1)\n"


def honest_draft_with_hijackers(user) -> Version:
    """An honest notebook whose cell imports helpers.py, shipped with would-be hijackers of the kernel's start."""
    notebook = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                     "language": "python"}})
    notebook.cells.append(new_code_cell("import helpers\nprint('answer', helpers.answer())", execution_count=1,
                                        outputs=[new_output("stream", name="stdout", text="answer 42\n")]))
    files = {
        "nb.ipynb": nbformat.writes(notebook).encode(),
        "helpers.py": b"def answer():\n    return 42\n",
        "ipykernel_launcher.py": HIJACK,
        "zmq.py": HIJACK,
    }
    version = record_create(owner=user, metadata={
        "title": "Helpers", "description": "Ships modules beside the notebook", "license": "CC-BY-4.0",
        "creators": [{"name": "Doe, Jane"}], "container_image": IMAGE})
    for path, data in files.items():
        draft_file_upload(version=version, actor=user, path=path, stream=io.BytesIO(data), content_length=len(data))
    return Version.objects.get(pk=version.pk)


@marks()
def test_an_uploaded_ipykernel_launcher_does_not_replace_the_jobs_kernel_and_helpers_still_import(
        user, gitlab_env):  # noqa: F811 - the fixture
    run = run_execute(run_pk=run_request(version=honest_draft_with_hijackers(user), requested_by=user).pk)

    assert run.status == "finished", (run.message, run.logs[-3000:])
    assert run.verdict == "reproduced", (run.verdict, run.message, run.logs[-3000:])
    assert run.report["execution"]["outcome"] == "completed"
    assert "hijacked" not in run.logs
