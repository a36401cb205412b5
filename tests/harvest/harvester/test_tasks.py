"""harvest_source_task: one harvest of a source by primary key; a source that is down is retried later."""

import pytest

from harvest.harvester.client import SourceUnreachable
from harvest.harvester.services import harvest_source_register
from harvest.models import HarvestedRecord
from harvest.tasks import harvest_source_task

pytestmark = pytest.mark.django_db


def test_the_task_harvests_the_source(oai_server):
    source = harvest_source_register(base_url=oai_server.url)

    result = harvest_source_task.apply(args=[source.pk])

    assert result.get() == "4 new, 0 updated, 1 deleted, 0 unchanged, 0 failed"
    assert HarvestedRecord.objects.count() == 5


def test_an_unreachable_source_is_retried_later(oai_server, monkeypatch):
    source = harvest_source_register(base_url=oai_server.url)

    def down(**kwargs):
        raise SourceUnreachable("down")

    monkeypatch.setattr("harvest.harvester.services.harvest_source_run", down)
    retries = []
    monkeypatch.setattr(harvest_source_task, "retry", lambda **kwargs: retries.append(kwargs) or kwargs["exc"])

    with pytest.raises(SourceUnreachable):
        harvest_source_task.apply(args=[source.pk], throw=True)

    assert [r["countdown"] for r in retries] == [300]
