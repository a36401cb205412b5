"""Logs as an operator reads them: one JSON object per line with the request id, which follows the Celery tasks
the request queued, and never a token or a password, whatever the request carried."""

import io
import json
import logging
import threading

import pytest
from celery.signals import task_success
from rest_framework.test import APIClient

from repository.observability.logs import ContextFilter, JsonFormatter, TextFormatter, current_request_id
from repository.services.tokens import token_create
from tests.celery_worker import celery_worker_on_redis
from tests.factories import UserFactory

PASSWORD = "correct-Horse-battery-9"
WRONG_PASSWORD = "wrong-Password-7-guess"


@pytest.fixture
def console(settings):
    """The project's console handler writing JSON into a buffer, everything from DEBUG up, SQL included."""
    settings.LOG_FORMAT = "json"
    settings.DEBUG = True  # Django logs every SQL statement with its parameters only then
    root = logging.getLogger()
    handler = next(h for h in root.handlers if any(isinstance(f, ContextFilter) for f in h.filters))
    buffer = io.StringIO()
    previous = (handler.setStream(buffer), handler.formatter, root.level)
    handler.setFormatter(JsonFormatter())
    root.setLevel(logging.DEBUG)
    loggers = [logging.getLogger(name) for name in ("django", "django.db.backends", "django.request")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    yield buffer
    handler.setStream(previous[0])
    handler.setFormatter(previous[1])
    root.setLevel(previous[2])
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


@pytest.mark.django_db
def test_no_token_or_password_in_any_log_line(console, client):
    user = UserFactory(username="ada")
    user.set_password(PASSWORD)
    user.save()
    _, token = token_create(user=user, name="laptop")

    api = APIClient()
    ok = api.get(f"/api/user/records?access_token={token}", HTTP_AUTHORIZATION=f"Bearer {token}")
    refused = api.get("/api/user/records", HTTP_AUTHORIZATION=f"Bearer {token[:-4]}abcd")
    failed_login = client.post("/accounts/login/", {"login": "ada", "password": WRONG_PASSWORD})
    login = client.post("/accounts/login/", {"login": "ada", "password": PASSWORD})
    logging.getLogger("tests").warning("connecting to %s with %s", f"redis://:{PASSWORD}@cache:6379/0",
                                       {"password": WRONG_PASSWORD})

    assert (ok.status_code, refused.status_code, failed_login.status_code, login.status_code) == (200, 401, 200, 302)
    text = console.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    assert any(line["logger"] == "django.db.backends" for line in lines), "SQL was logged, with its parameters"
    access = [line for line in lines if line["logger"] == "nbarchive.request"]
    assert [(line["status"], line["request_id"]) for line in access if line["path"].startswith("/api/")] == [
        (200, ok["X-Request-ID"]), (401, refused["X-Request-ID"])]
    for secret in (token, token[4:], PASSWORD, WRONG_PASSWORD):
        assert secret not in text


def test_text_lines_are_redacted_too():
    record = logging.LogRecord("tests", logging.INFO, __file__, 1, "header %s url %s", None, None)
    record.args = ("Authorization: Bearer nba_abcdefghijklmnop0123", "postgres://app:s3cr3t-pw@db/app")
    ContextFilter().filter(record)

    line = TextFormatter("%(levelname)s [%(request_id)s] %(message)s").format(record)

    assert line == "INFO [-] header Authorization: Bearer *** url postgres://app:***@db/app"


@pytest.mark.django_db(transaction=True)
def test_the_request_id_follows_the_tasks_a_request_queues(user):
    """Creating a draft reserves its DOI through a Celery task: in the worker that task runs under the id of the
    request that queued it."""
    seen, done = [], threading.Event()

    def record(sender=None, **kwargs):
        if sender.name == "repository.tasks.doi_sync_task":
            seen.append(current_request_id())
            done.set()

    task_success.connect(record, weak=False)
    _, token = token_create(user=user, name="tests")
    api = APIClient()
    try:
        with celery_worker_on_redis(queues=["celery", "dois"]):
            response = api.post("/api/records", {"title": "Logged"}, format="json", HTTP_X_REQUEST_ID="req-0123456789",
                                HTTP_AUTHORIZATION=f"Bearer {token}")
            assert response.status_code == 201, response.content
            assert done.wait(30), "the DOI task did not run"
    finally:
        task_success.disconnect(record)

    assert response["X-Request-ID"] == "req-0123456789"
    # The request's own task ran under its id. Other DOI syncs may run in the worker meanwhile (a retry, the drain
    # of waiting DOIs after a success): they carry no request id, never another request's.
    assert "req-0123456789" in seen
    assert set(seen) - {""} == {"req-0123456789"}


@pytest.mark.django_db
def test_no_share_link_secret_in_any_log_line(console, client):
    import hashlib

    from repository.access.models import ShareLink
    from tests.factories import published_version

    owner = UserFactory(username="grace")
    version = published_version(owner, UserFactory(is_superuser=True))
    token = "the-share-secret-of-a-referee-0123456789"
    ShareLink.objects.create(record=version.record, created_by=owner,
                             token_sha256=hashlib.sha256(token.encode()).hexdigest())

    opened = client.get(f"/access/share/{token}")
    api = APIClient().get(f"/api/records/{version.record.public_id}?share={token}")

    assert (opened.status_code, api.status_code) == (302, 200)
    text = console.getvalue()
    assert f"/access/share/{'*' * 3}" in text and token not in text
