"""sort=mostviewed: records in the order of their unique views, counted the way readers' visits are counted (the
landing page writes the events, the aggregation task counts them), ties newest first; in the API and on /search."""

from datetime import timedelta

import pytest
from django.db.models import F
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from repository.models import UsageEvent
from repository.services.new_versions import version_new_draft
from repository.tasks import usage_aggregate_task
from tests.factories import accept, sync_pending

pytestmark = pytest.mark.django_db

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


def view(version, *readers: int) -> None:
    """Each reader (an address of its own, no session: a different visitor) opens the version's landing page."""
    url = reverse("repository:version_landing", kwargs={"record_id": version.record.public_id,
                                                        "number": version.number})
    for reader in readers:
        assert Client().get(url, headers={"user-agent": BROWSER},
                            REMOTE_ADDR=f"203.0.113.{reader}").status_code == 200


def aggregate() -> None:
    """What beat runs every minute, once the events have settled (it leaves the last few seconds' for later)."""
    UsageEvent.objects.update(occurred_at=F("occurred_at") - timedelta(minutes=1))
    usage_aggregate_task.apply().get()


def most_viewed(**params) -> list[str]:
    response = APIClient().get("/api/records", {"sort": "mostviewed", **params})
    assert response.status_code == 200
    assert response.json()["sortBy"] == "mostviewed"
    return [hit["title"] for hit in response.json()["hits"]["hits"]]


def test_mostviewed_orders_records_by_unique_views_ties_newest_first(publish):
    oldest, middle, newest = (publish(title=title) for title in ("Oldest", "Middle", "Newest"))
    view(oldest, 1, 2)
    view(middle, 3)
    view(newest, 4, 4)  # the same reader twice in the hour: one unique view
    aggregate()
    # Oldest has 2; Middle and Newest 1 each, so the newer comes first.
    assert most_viewed() == ["Oldest", "Newest", "Middle"]

    view(middle, 5, 6)  # later visits move a record up at the next run of the task
    aggregate()
    assert most_viewed() == ["Middle", "Oldest", "Newest"]
    assert most_viewed(q="oldest OR newest") == ["Oldest", "Newest"]


def test_a_new_version_keeps_its_records_views_in_the_sort(publish, user, moderator):
    viewed, other = publish(title="Viewed"), publish(title="Other")
    view(viewed, 1, 2)
    view(other, 3)
    aggregate()
    accept(version_new_draft(record=viewed.record, actor=user), moderator)
    sync_pending()
    assert most_viewed() == ["Viewed", "Other"]
    assert most_viewed(all_versions="true")[:2] == ["Viewed", "Viewed"]


def test_the_search_page_offers_most_viewed_and_sorts_by_it(publish, client):
    popular, _ = publish(title="Popular"), publish(title="Unread")
    view(popular, 1)
    aggregate()
    html = client.get("/search", {"sort": "mostviewed"}).content.decode()
    assert '<option value="mostviewed" selected>Most viewed</option>' in html
    assert html.index("Popular") < html.index("Unread")
