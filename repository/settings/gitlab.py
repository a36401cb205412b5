"""Settings of the GitLab app (repository/gitlab); part of the settings package."""

from ._env import env
from .verification import RUNNER_MAX_OUTPUT_MB, RUNNER_NOTEBOOK_TIMEOUT_SECONDS

GITLAB_URL = env.str("GITLAB_URL", default="")
GITLAB_TOKEN = env.str("GITLAB_TOKEN", default="")
GITLAB_PROJECT = env.str("GITLAB_PROJECT", default="")

# --- GitLab (the app repository/gitlab: client.py, runner.py, services/mirror.py, services/imports.py) ---------
# GITLAB_URL and GITLAB_TOKEN (above) reach the instance; GITLAB_PROJECT is the verification project RUNNER=gitlab
# commits runs to. It must hold no secrets (no CI/CD variables): the notebook runs in its jobs.
GITLAB_HTTP_TIMEOUT_SECONDS = env.float("GITLAB_HTTP_TIMEOUT_SECONDS", default=30.0)
# Tries of one API step (commit, starting the pipeline, a poll) while GitLab answers 5xx, with backoff.
GITLAB_API_ATTEMPTS = env.int("GITLAB_API_ATTEMPTS", default=4)
# The job's `timeout:`: the notebook's wall clock plus pulling the image and fetching the inputs.
GITLAB_JOB_TIMEOUT_SECONDS = env.int("GITLAB_JOB_TIMEOUT_SECONDS", default=RUNNER_NOTEBOOK_TIMEOUT_SECONDS + 600)
# A job no runner picked up within this long counts as "runner unavailable": the pipeline is cancelled and the
# run ends in error with a message (no verdict).
GITLAB_PENDING_TIMEOUT_SECONDS = env.float("GITLAB_PENDING_TIMEOUT_SECONDS", default=900.0)
# Polling the pipeline: the first wait, growing by half each time up to the maximum.
GITLAB_POLL_INITIAL_SECONDS = env.float("GITLAB_POLL_INITIAL_SECONDS", default=2.0)
GITLAB_POLL_MAX_SECONDS = env.float("GITLAB_POLL_MAX_SECONDS", default=30.0)
# Larger job artifacts are not downloaded: the run's verdict says so (resource_limit).
GITLAB_ARTIFACTS_MAX_MB = env.float("GITLAB_ARTIFACTS_MAX_MB", default=float(RUNNER_MAX_OUTPUT_MB * 2 + 100))
GITLAB_ARTIFACTS_EXPIRE_DAYS = env.int("GITLAB_ARTIFACTS_EXPIRE_DAYS", default=30)
# Lifetime of the signed URLs a job fetches the run's inputs from (they also die when the run ends).
GITLAB_DATA_URL_TTL_SECONDS = env.int(
    "GITLAB_DATA_URL_TTL_SECONDS", default=int(GITLAB_PENDING_TIMEOUT_SECONDS) + GITLAB_JOB_TIMEOUT_SECONDS + 300)
# A job that cannot run the kernel under another uid than the collector (the image's user is not root, as
# docker-stacks' jovyan) leaves the notebook able to forge its result: a run whose outcome would be in the author's
# favour (the notebook ran to the end) then ends in error with a message to the operator, unless this is on, in
# which case the verdict stands with a warning in the report. Failures stand either way (runner.py).
GITLAB_ALLOW_SHARED_UID = env.bool("GITLAB_ALLOW_SHARED_UID", default=False)
# The mirror: each published version's files are committed to <namespace>/<record id> and tagged v<number>.
GITLAB_MIRROR_ENABLED = env.bool("GITLAB_MIRROR_ENABLED", default=False)
GITLAB_MIRROR_NAMESPACE = env.str("GITLAB_MIRROR_NAMESPACE", default="")
GITLAB_MIRROR_VISIBILITY = env.str("GITLAB_MIRROR_VISIBILITY", default="public")  # of projects the mirror creates
# Files larger than this are left out of the mirror (named in the commit message); the archive keeps them.
GITLAB_MIRROR_MAX_FILE_MB = env.float("GITLAB_MIRROR_MAX_FILE_MB", default=100.0)
# New versions from tags: each linked project has its own webhook secret (shown once when linked). This optional
# instance-wide secret is also accepted, for a group or system hook configured by the administrators.
GITLAB_WEBHOOK_SECRET = env.str("GITLAB_WEBHOOK_SECRET", default="")
# Only public projects may be linked: our token may be able to read private projects the owner cannot.
GITLAB_IMPORT_PUBLIC_ONLY = env.bool("GITLAB_IMPORT_PUBLIC_ONLY", default=True)
