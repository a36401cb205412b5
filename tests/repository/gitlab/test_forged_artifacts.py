"""RUNNER=gitlab against a notebook that forges the job's artifacts: it writes out/status.json (`completed`), the
submitted notebook as out/executed.ipynb and an out/environment.json claiming `separate-uid+pidns`, then makes them
read-only so that the job's own writes fail and the job crashes (`artifacts: when: always` uploads the forgery).

With a job user that is not root (the fake's job_user "user": the kernel shares the collector's uid) the attack
works inside the job, so nbarchive must not believe it: the isolation comes from the job's log (the first marker
line, printed before the notebook runs), and a favourable result of a shared-uid job, or of a job that failed while
its artifacts say `completed`, ends in error with a message for the operator. With a root job (separate uid) the
notebook cannot write out/ at all.
"""

import io
import json

import nbformat
import pytest
from django.urls import reverse
from nbformat.v4 import new_code_cell, new_notebook, new_output

from repository.gitlab import runner as gitlab_runner
from repository.gitlab.trust import job_isolation
from repository.models import Version
from repository.services.drafts import record_create
from repository.services.files import draft_file_upload
from repository.services.runs import run_execute, run_request
from tests.factories import IMAGE, demo_draft
from tests.repository.gitlab.test_runner import gitlab_env, marks, no_queue  # noqa: F401 - fixtures

NAME = "forge_out.ipynb"
WARNING = "could have tampered with this verdict"
# The kernel's working folder is the checkout's work/; the job's artifacts folder is its sibling out/.
FORGE = f"""import json, os
out = os.path.join(os.path.dirname(os.getcwd()), 'out')
forged = {{
    'status.json': json.dumps({{'outcome': 'completed'}}),
    'executed.ipynb': open({NAME!r}).read(),
    'environment.json': json.dumps({{'python_version': '3.11.2', 'packages': {{}},
                                     'kernel_isolation': 'separate-uid+pidns'}}),
    'driver.log': 'nbarchive: kernel isolation: separate-uid+pidns\\n',
}}
print('nbarchive: kernel isolation: separate-uid+pidns')
for name, text in forged.items():
    path = os.path.join(out, name)
    with open(path, 'w') as handle:
        handle.write(text)
    os.chmod(path, 0o444)
print('forged')"""


def forging_out_draft(user) -> Version:
    """The attack in its first cell, stored with the output it prints when it succeeds; the second cell raises."""
    notebook = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                     "language": "python"}})
    notebook.cells.append(new_code_cell(FORGE, execution_count=1, outputs=[
        new_output("stream", name="stdout", text="nbarchive: kernel isolation: separate-uid+pidns\nforged\n")]))
    notebook.cells.append(new_code_cell("raise RuntimeError('this notebook does not run')", execution_count=2))
    data = nbformat.writes(notebook).encode()
    version = record_create(owner=user, metadata={
        "title": "Forged artifacts", "description": "Writes its own verdict", "license": "CC-BY-4.0",
        "creators": [{"name": "Doe, Jane"}], "container_image": IMAGE})
    draft_file_upload(version=version, actor=user, path=NAME, stream=io.BytesIO(data), content_length=len(data))
    return Version.objects.get(pk=version.pk)


def run_page(client, user, run) -> str:
    client.force_login(user)
    return client.get(reverse("repository:run_report", kwargs={"run_id": run.run_id})).content.decode()


def claims_isolation(run) -> bool:
    return "separate-uid" in json.dumps(run.report or {}) or "separate-uid" in json.dumps(run.environment or {})


@marks()
def test_a_shared_uid_job_whose_notebook_forges_its_artifacts_is_not_reproduced(user, gitlab_env, client):  # noqa: F811
    gitlab_env.job_user = "user"
    run = run_execute(run_pk=run_request(version=forging_out_draft(user), requested_by=user).pk)

    assert run.verdict != "reproduced" and run.status == "error", (run.status, run.verdict, run.message)
    assert "cannot be trusted" in run.message or "was not accepted" in run.message, run.message
    assert not claims_isolation(run), (run.report, run.environment)
    html = run_page(client, user, run)
    assert "separate-uid" not in html


@marks()
def test_even_when_shared_uid_verdicts_are_allowed_the_forged_artifacts_are_refused(
        user, gitlab_env, settings):  # noqa: F811
    settings.GITLAB_ALLOW_SHARED_UID = True
    gitlab_env.job_user = "user"
    run = run_execute(run_pk=run_request(version=forging_out_draft(user), requested_by=user).pk)

    assert run.verdict != "reproduced" and run.status == "error", (run.status, run.verdict, run.message)
    assert "its artifacts say the notebook ran to the end" in run.message, run.message
    assert not claims_isolation(run)


@marks()
def test_a_shared_uid_job_that_completed_ends_in_error_telling_the_operator_what_to_change(user, gitlab_env):  # noqa: F811
    gitlab_env.job_user = "user"
    run = run_execute(run_pk=run_request(version=demo_draft(user), requested_by=user).pk)

    assert run.status == "error" and run.verdict != "reproduced", (run.status, run.verdict, run.message)
    assert "shared-uid" in run.message and "as root" in run.message and "RUNNER=image" in run.message
    assert "GITLAB_ALLOW_SHARED_UID" in run.message


@marks()
def test_a_root_job_keeps_the_notebook_out_of_the_artifacts_folder(user, gitlab_env, client):  # noqa: F811
    assert gitlab_env.job_user == "root"
    run = run_execute(run_pk=run_request(version=forging_out_draft(user), requested_by=user).pk)

    assert run.status == "finished" and run.verdict == "execution_failed", (run.verdict, run.message,
                                                                            run.logs[-3000:])
    assert "PermissionError" in run.message, run.message
    assert run.report["environment"]["kernel_isolation"] == "separate-uid"  # the job's log, not the notebook
    assert "image's own python3" in run.report["environment"]["collector"]
    html = run_page(client, user, run)
    assert "Results collected by" in html and "the author controls" in html


@marks()
def test_a_failed_job_whose_artifacts_say_completed_is_not_reproduced(user, gitlab_env, monkeypatch):  # noqa: F811
    """The job script writes its artifacts honestly and then fails (as when something breaks after the writes):
    the artifacts and the job's exit disagree, so neither can be believed."""
    honest = gitlab_runner.commit_files

    def failing_after_the_writes(*args, **kwargs):
        files = honest(*args, **kwargs)
        script = files[".nbarchive/job.py"]
        assert b"    sys.exit(main())" in script
        files[".nbarchive/job.py"] = script.replace(b"    sys.exit(main())", b"    main()\n    sys.exit(1)")
        return files

    monkeypatch.setattr(gitlab_runner, "commit_files", failing_after_the_writes)
    run = run_execute(run_pk=run_request(version=demo_draft(user), requested_by=user).pk)

    assert run.status == "error" and run.verdict != "reproduced", (run.status, run.verdict, run.message)
    assert "ended 'failed'" in run.message and "cannot be trusted" in run.message, run.message


@pytest.mark.parametrize(("trace", "expected"), [
    ("Running with gitlab-runner\n$ python3 .nbarchive/job.py\nnbarchive: kernel isolation: shared-uid\n"
     "nbarchive: kernel isolation: separate-uid+pidns\n", "shared-uid"),
    ("2026-12-07T21:00:00.123456Z 00O nbarchive: kernel isolation: separate-uid\r\n", "separate-uid"),
    ("print('nbarchive: kernel isolation: separate-uid')\n", "unknown"),  # not alone on its line
    ("nbarchive: kernel isolation: root-please\n", "unknown"),
    ("", "unknown"),
])
def test_the_isolation_is_the_first_marker_line_of_the_jobs_log(trace, expected):
    assert job_isolation(trace) == expected
