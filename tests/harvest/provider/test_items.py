"""The reads behind the verbs: one query per relation for a page, whatever its size."""

import pytest
from django.db.models import F

from harvest.provider.items import prefetch_rows
from repository.models import Creator, Version
from repository.querying import AnyOf

pytestmark = pytest.mark.django_db


def test_any_of_selects_like_in_on_every_database(publish):
    versions = [publish(), publish(), publish()]
    wanted = {versions[0].pk, versions[2].pk}

    assert set(Version.objects.filter(AnyOf(F("id"), wanted)).values_list("id", flat=True)) == wanted
    assert not Version.objects.filter(AnyOf(F("id"), set())).exists()


def test_prefetch_rows_answers_all_from_one_query(publish, django_assert_num_queries):
    versions = list(Version.objects.filter(pk__in=[publish(creators=[{"name": f"Doe, J{i}"}, {"name": "Lab"}]).pk
                                                    for i in range(3)]).order_by("pk"))

    with django_assert_num_queries(1):
        prefetch_rows(versions, "creators", Creator.objects.order_by("position"))
    with django_assert_num_queries(0):
        names = [[c.name for c in v.creators.all()] for v in versions]
        back = {c.version is v for v in versions for c in v.creators.all()}

    assert names == [[f"Doe, J{i}", "Lab"] for i in range(3)]
    assert back == {True}
    with pytest.raises(AttributeError):  # a query built on the cache would ignore the version: refused
        versions[0].creators.filter(name="Lab")
