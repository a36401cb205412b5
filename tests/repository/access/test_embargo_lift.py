"""Embargoes end: `manage.py lift_embargoes` (and the daily beat task, through the same service) opens the files
of every published version whose day has come, with an audit event, the DOI metadata sent to DataCite again and
the OAI-PMH datestamp moved; an owner or admin may lift one early, no one else."""

import datetime
import io
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from harvest.models import OaiFragment
from repository.access.policy import can_read_files, today
from repository.celery import app
from repository.errors import Conflict, PermissionDenied
from repository.models import AuditEvent, DoiOutbox, FileAccess, Version
from repository.services.dois import SYNCED
from repository.services.embargoes import embargo_lift, embargoes_lift_due
from repository.tasks import embargoes_lift_due_task
from tests.factories import UserFactory, demo_draft, published_version, sync_pending
from tests.repository.doi.conftest import DATACITE_PASSWORD, DATACITE_PREFIX, DATACITE_USERNAME, datacite_server

pytestmark = pytest.mark.django_db
__all__ = ["datacite_server"]  # the fake DataCite fixture, used below

HOST = "archive.example.org"


def day(days: int) -> datetime.date:
    return today() + datetime.timedelta(days=days)


@pytest.fixture(autouse=True)
def datacite_and_oai_settings(settings, datacite_server):
    settings.DOI_PROVIDER = "datacite"
    settings.DOI_PREFIX = DATACITE_PREFIX
    settings.DATACITE_API_URL = datacite_server.url
    settings.DATACITE_USERNAME, settings.DATACITE_PASSWORD = DATACITE_USERNAME, DATACITE_PASSWORD
    settings.DATACITE_TEST_MODE = False
    settings.DATACITE_TIMEOUT = 2.0
    settings.SITE_URL = f"https://{HOST}"
    settings.OAI_IDENTIFIER_NAMESPACE = ""
    return settings


@pytest.fixture
def moderator(db):
    return UserFactory(username="moderator")


def embargoed(owner, moderator, until: datetime.date, reason: str = "Until the paper appears") -> Version:
    version = published_version(owner, moderator, access={"files": "embargoed", "embargo_until": until.isoformat(),
                                                           "embargo_reason": reason})
    # Published an hour ago, so that a datestamp (to the second) that moves is seen to move.
    Version.objects.filter(pk=version.pk).update(public_changed_at=timezone.now() - datetime.timedelta(hours=1))
    version.refresh_from_db()
    return version


def oai_datestamp(version: Version) -> str:
    response = Client().get("/oai", {"verb": "GetRecord", "metadataPrefix": "oai_datacite",
                                     "identifier": f"oai:{HOST}:{version.record.public_id}/v{version.number}"})
    assert response.status_code == 200
    return re.search(r"<datestamp>([^<]+)</datestamp>", response.content.decode())[1]


def datacite_updates(server, doi: str) -> int:
    return sum(1 for r in server.requests if r.method == "PUT" and r.url_path.lower().endswith(doi.lower()))


def lift_embargoes(*args) -> str:
    out = io.StringIO()
    call_command("lift_embargoes", *args, stdout=out)
    return out.getvalue()


def test_the_job_run_after_the_day_opens_the_files_and_tells_datacite_and_harvesters(user, moderator,
                                                                                       datacite_server):
    version = embargoed(user, moderator, day(3))
    later = embargoed(user, moderator, day(30))
    stranger = UserFactory()
    datestamp, generation = oai_datestamp(version), DoiOutbox.objects.get(version=version).generation
    updates = datacite_updates(datacite_server, version.doi)
    assert lift_embargoes("--on", day(2).isoformat()) == ""  # the day before: nothing to do

    printed = lift_embargoes("--on", day(4).isoformat())  # the clock moved past the day

    assert printed.splitlines() == [f"{version.record.public_id} v1 ({version.doi}): embargo until "
                                    f"{day(3).isoformat()} lifted, files open"]
    version.refresh_from_db()
    assert (version.access_files, version.embargo_until, version.embargo_reason) == (FileAccess.OPEN, None, "")
    assert can_read_files(stranger, version, on=day(-1))  # open for good, whatever the day
    event = AuditEvent.objects.get(version=version, action="version.embargo_lift")
    assert event.actor is None and event.data["early"] is False
    assert event.data["before"] == {"files": "embargoed", "embargo_until": day(3).isoformat(),
                                    "embargo_reason": "Until the paper appears"}
    assert DoiOutbox.objects.get(version=version).generation > generation
    assert SYNCED in sync_pending()
    assert datacite_updates(datacite_server, version.doi) > updates  # the new metadata reached DataCite
    assert oai_datestamp(version) > datestamp
    assert OaiFragment.objects.get(version=version).datestamp == version.public_changed_at  # payloads rewritten
    later.refresh_from_db()
    assert later.access_files == FileAccess.EMBARGOED  # its day has not come
    assert lift_embargoes("--on", day(4).isoformat()) == ""  # run again: nothing left


def test_the_beat_task_lifts_what_has_ended_today(user, moderator):
    version = embargoed(user, moderator, day(3))
    Version.objects.filter(pk=version.pk).update(embargo_until=today())  # its day has come
    scheduled = {entry["task"] for entry in app.conf.beat_schedule.values()}

    assert "repository.tasks.embargoes_lift_due_task" in scheduled
    assert embargoes_lift_due_task() == 1
    version.refresh_from_db()
    assert version.access_files == FileAccess.OPEN


def test_the_job_leaves_drafts_and_withdrawn_versions_alone(user, moderator):
    draft = demo_draft(user, access={"files": "embargoed", "embargo_until": day(3).isoformat()})

    assert embargoes_lift_due(on=day(10)) == []
    draft.refresh_from_db()
    assert draft.access_files == FileAccess.EMBARGOED


def test_a_bad_day_is_a_command_error():
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        lift_embargoes("--on", "tomorrow")


def test_an_admin_lifts_early_and_a_second_lift_is_a_conflict(user, moderator):
    version = embargoed(user, moderator, day(30))
    admin = UserFactory(is_superuser=True)

    embargo_lift(version=version, actor=admin)

    version.refresh_from_db()
    assert version.access_files == FileAccess.OPEN
    assert AuditEvent.objects.get(version=version, action="version.embargo_lift").data["early"] is True
    with pytest.raises(Conflict):
        embargo_lift(version=version, actor=admin)


def test_moderators_and_strangers_cannot_lift(user, moderator):
    version = embargoed(user, moderator, day(30))

    for actor in (moderator, UserFactory()):
        with pytest.raises(PermissionDenied):
            embargo_lift(version=version, actor=actor)
    version.refresh_from_db()
    assert version.access_files == FileAccess.EMBARGOED
