"""The GitLab integration, a Django app of its own (label `gitlab`; its tables kept their `repository_` names).

Three uses of one GitLab instance (GITLAB_URL, GITLAB_TOKEN):
- the `gitlab` runner (RUNNER=gitlab): a run's notebook executes in a CI job of the verification project, in the
  version's pinned image. `runner.py` drives it (commit, pipeline, polling, verdict), `ci.py` makes what is
  committed (the CI file, the job's manifest), `job.py` is the script that runs inside the job, `artifacts.py`
  reads what the job left. repository/runners/base.py `get_runner("gitlab")` is the way in;
- the mirror (GITLAB_MIRROR_ENABLED): each published version pushed to `<namespace>/<record id>` and tagged
  (`services/mirror.py`, queued by the core's version_publish);
- new versions from tags: a record linked to a project, whose tag pushes (webhook) or import requests become
  version drafts (`services/imports.py`, `models.py`, `api.py` behind the URLs in repository/api/urls.py).

`client.py` is the only module that imports python-gitlab; it turns the library's errors into GitLabError and its
subclasses. `tasks.py` holds the mirror and import tasks, `admin.py` a read-only view of links and imports.
"""
