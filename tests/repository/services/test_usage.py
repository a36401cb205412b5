"""Usage counts, COUNTER-style: which requests write an event, and how the aggregation task counts them (double
clicks, unique per visitor and hour, per version and per record), shown on the landing page and in the API."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from repository.models import UsageCount, UsageEvent, Version
from repository.services.new_versions import version_new_draft
from repository.services.usage import is_robot, usage_aggregate, usage_counts
from repository.tasks import usage_aggregate_task
from tests.factories import UserFactory, accept, demo_draft, published_version, sync_pending

pytestmark = pytest.mark.django_db

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
T0 = datetime(2026, 12, 7, 10, 5, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def local_registrar(settings, tmp_path):
    settings.DOI_PROVIDER = "local"
    settings.VAR_DIR = tmp_path / "var"


@pytest.fixture
def admin(db):
    return UserFactory(is_superuser=True)


@pytest.fixture
def published(user, admin) -> Version:
    return published_version(user, admin, title="Counted")


def landing_url(version):
    return reverse("repository:version_landing", kwargs={"record_id": version.record.public_id,
                                                         "number": version.number})


def file_url(version, path):
    return reverse("repository:published_file", kwargs={"record_id": version.record.public_id,
                                                        "number": version.number, "file_path": path})


def event(version, at, visitor="alice", kind=UsageEvent.Kind.VIEW, target=""):
    return UsageEvent.objects.create(record_id=version.record_id, version=version, kind=kind, target=target,
                                     visitor=visitor, occurred_at=at)


def counts(version):
    return usage_counts(Version.objects.get(pk=version.pk))


# --- What is recorded ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("agent", "robot"), [
    (BROWSER, False),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", True),
    ("python-requests/2.32.3", True),
    ("Wget/1.21", True),
    ("", True),
])
def test_robots_are_recognised_by_the_counter_list(agent, robot):
    assert is_robot(agent) is robot


def test_a_browser_view_and_download_write_one_event_each_robots_and_metadata_requests_none(client, published):
    assert client.get(landing_url(published), headers={"user-agent": BROWSER}).status_code == 200
    download = client.get(file_url(published, "thermal.ipynb"), headers={"user-agent": BROWSER})
    assert download.status_code == 200
    b"".join(download.streaming_content)
    assert list(UsageEvent.objects.values_list("kind", "target")) == [("view", ""), ("download", "thermal.ipynb")]

    client.get(landing_url(published), headers={"user-agent": "Googlebot/2.1"})
    client.get(landing_url(published))  # no user agent at all
    client.head(landing_url(published), headers={"user-agent": BROWSER})
    client.get(landing_url(published), headers={"user-agent": BROWSER, "sec-purpose": "prefetch;prerender"})
    client.get(landing_url(published), headers={"user-agent": BROWSER, "accept": "application/ld+json"})
    resumed = client.get(file_url(published, "thermal.ipynb"), headers={"user-agent": BROWSER, "range": "bytes=10-"})
    assert resumed.status_code == 206
    assert UsageEvent.objects.count() == 2


def test_visitors_are_stored_as_keyed_hashes_never_as_addresses(client, published):
    client.get(landing_url(published), headers={"user-agent": BROWSER}, REMOTE_ADDR="203.0.113.7")
    visitor = UsageEvent.objects.get().visitor
    assert len(visitor) == 64 and "203.0.113.7" not in visitor


# --- How events are counted ---------------------------------------------------------------------------------

def test_a_double_click_within_30_seconds_counts_once(published):
    event(published, T0)
    event(published, T0 + timedelta(seconds=29))  # double click
    event(published, T0 + timedelta(seconds=65))  # a new view, same visitor, same hour
    event(published, T0 + timedelta(seconds=66), visitor="bob")
    event(published, T0 + timedelta(hours=1))  # the next hour: unique again

    assert usage_aggregate(now=T0 + timedelta(hours=2)) == 5
    assert counts(published)["version"] == {"views": 4, "unique_views": 3, "downloads": 0, "unique_downloads": 0}


def test_the_rules_hold_across_runs_of_the_task(published):
    event(published, T0)
    assert usage_aggregate(now=T0 + timedelta(seconds=10)) == 1
    event(published, T0 + timedelta(seconds=20))  # a double click of the view counted in the previous run
    event(published, T0 + timedelta(minutes=5))  # same visitor, same hour: not unique
    assert usage_aggregate(now=T0 + timedelta(minutes=10)) == 2
    assert usage_aggregate(now=T0 + timedelta(minutes=11)) == 0  # nothing is counted twice
    assert counts(published)["version"]["views"] == 2 and counts(published)["version"]["unique_views"] == 1


def test_downloads_of_different_files_count_each_but_once_uniquely(published):
    event(published, T0, kind="download", target="thermal.ipynb")
    event(published, T0 + timedelta(seconds=2), kind="download", target="data/measurements.csv")
    event(published, T0 + timedelta(seconds=3), kind="download", target="thermal.ipynb")  # double click
    usage_aggregate(now=T0 + timedelta(minutes=1))
    assert counts(published)["version"] == {"views": 0, "unique_views": 0, "downloads": 2, "unique_downloads": 1}


def test_a_record_counts_a_visitor_once_per_hour_across_its_versions(published, user, admin):
    second = accept(version_new_draft(record=published.record, actor=user), admin)
    sync_pending()
    event(published, T0)
    event(second, T0 + timedelta(minutes=1))
    event(second, T0 + timedelta(minutes=2), visitor="bob")
    usage_aggregate(now=T0 + timedelta(minutes=5))

    assert counts(published)["version"]["unique_views"] == 1
    assert counts(second)["version"] == {"views": 2, "unique_views": 2, "downloads": 0, "unique_downloads": 0}
    assert counts(second)["record"] == {"views": 3, "unique_views": 2, "downloads": 0, "unique_downloads": 0}
    assert UsageCount.objects.filter(record=published.record, version=None).count() == 1


def test_events_are_kept_only_while_the_rules_need_them(published):
    event(published, T0)
    usage_aggregate(now=T0 + timedelta(minutes=1))
    assert UsageEvent.objects.filter(processed=True).count() == 1
    usage_aggregate(now=T0 + timedelta(hours=3))
    assert not UsageEvent.objects.exists()
    assert counts(published)["version"]["views"] == 1


def test_drafts_are_never_counted(client, user):
    draft = demo_draft(user)
    client.force_login(user)
    client.get(reverse("repository:draft_detail", kwargs={"record_id": draft.record.public_id}),
               headers={"user-agent": BROWSER})
    assert not UsageEvent.objects.exists()


# --- Where the counts show ----------------------------------------------------------------------------------

def test_the_landing_page_and_the_api_show_the_counts_after_the_task(client, published):
    client.get(landing_url(published), headers={"user-agent": BROWSER})
    b"".join(client.get(file_url(published, "thermal.ipynb"), headers={"user-agent": BROWSER}).streaming_content)
    UsageEvent.objects.update(occurred_at=T0)
    assert usage_aggregate_task.apply().get() == 2  # what beat runs every minute

    html = client.get(landing_url(published)).content.decode()
    usage = html[html.index('id="usage-version"'):html.index("</span>", html.index('id="usage-version"'))]
    assert " ".join(usage.split()).endswith("1 view · 1 download")
    api = client.get(reverse("api:record", kwargs={"record_id": published.record.public_id})).json()
    assert api["stats"] == {"version": {"views": 1, "unique_views": 1, "downloads": 1, "unique_downloads": 1},
                            "record": {"views": 1, "unique_views": 1, "downloads": 1, "unique_downloads": 1}}
