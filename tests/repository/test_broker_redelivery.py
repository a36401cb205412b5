"""Redis hands a task that is not acknowledged within its visibility timeout to another worker. Verification tasks
are acknowledged when they end, so the timeout must outlast the longest one, or a long notebook runs twice at once."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _celery_limits(tmp_path, **environment) -> dict:
    code = ("import json, django; django.setup(); from django.conf import settings; from repository.tasks import "
            "run_verification_task as t; print(json.dumps({'visibility': getattr(settings, "
            "'CELERY_BROKER_TRANSPORT_OPTIONS', {}).get('visibility_timeout'), 'time_limit': t.time_limit}))")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "CELERY_", "RUNNER"))}
    env.update(DJANGO_SETTINGS_MODULE="repository.settings", NBARCHIVE_VAR_DIR=str(tmp_path), **environment)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                            env=env)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_redis_broker_keeps_a_task_hidden_longer_than_the_longest_verification(tmp_path):
    limits = _celery_limits(tmp_path, CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
                            RUNNER_NOTEBOOK_TIMEOUT_SECONDS="7200")
    assert limits["time_limit"] > 7200
    assert limits["visibility"] > limits["time_limit"]


def test_the_gitlab_runner_waits_for_the_pipeline_and_the_broker_waits_longer(tmp_path):
    limits = _celery_limits(tmp_path, CELERY_BROKER_URL="redis://127.0.0.1:6379/0", RUNNER="gitlab",
                            GITLAB_PENDING_TIMEOUT_SECONDS="3600", GITLAB_JOB_TIMEOUT_SECONDS="7200")
    assert limits["time_limit"] > 3600 + 7200
    assert limits["visibility"] > limits["time_limit"]
