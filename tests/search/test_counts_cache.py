"""A search's facet counts, total and page of hits are cached, and every change to the index makes them stale at
once: a reader never sees counts or hits that disagree with what was published."""

import pytest

from repository.search import SearchParams, search_run
from repository.selectors import version_metadata
from repository.services.published import version_correct_metadata, version_withdraw
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def counts_cached(settings):
    settings.SEARCH_COUNTS_CACHE_SECONDS = 600


def licences(q: str) -> tuple[int, dict[str, int]]:
    result = search_run(SearchParams(q=q))
    return result.total, {b["key"]: b["doc_count"] for b in result.aggregations["license"]}


def titles(q: str, **params) -> list[str]:
    return [hit.title for hit in search_run(SearchParams(q=q, **params)).hits]


def test_counts_follow_a_publication_a_correction_and_a_withdrawal(publish, user):
    first = publish(title="Copper at low temperature", license="MIT")
    assert licences("copper") == (1, {"MIT": 1})
    assert titles("copper") == ["Copper at low temperature"]

    publish(title="Copper at high temperature", license="MIT")
    assert licences("copper") == (2, {"MIT": 2})
    assert titles("copper", sort="newest") == ["Copper at high temperature", "Copper at low temperature"]

    version_correct_metadata(version=first, actor=user, reason="licence",
                             metadata={**version_metadata(first), "license": "CC0-1.0",
                                       "title": "Copper at low temperatures"})
    assert licences("copper") == (2, {"MIT": 1, "CC0-1.0": 1})
    assert titles("copper", sort="newest") == ["Copper at high temperature", "Copper at low temperatures"]

    version_withdraw(version=first, actor=UserFactory(is_superuser=True), reason="Wrong data.")
    assert licences("copper") == (1, {"MIT": 1})
    assert titles("copper", sort="newest") == ["Copper at high temperature"]


def test_a_repeated_search_reads_only_the_documents_of_its_page(publish, django_assert_num_queries):
    publish(title="Copper", license="MIT", keywords=["materials"])
    first = search_run(SearchParams(q="copper"))
    # the index's generation, and the page's documents by id (no community to label)
    with django_assert_num_queries(2):
        again = search_run(SearchParams(q="copper"))
    assert (again.total, again.aggregations) == (first.total, first.aggregations)
    assert [h.pk for h in again.hits] == [h.pk for h in first.hits]


def test_each_combination_of_filters_has_counts_of_its_own(publish):
    publish(title="Copper", license="MIT")
    publish(title="Copper again", license="CC0-1.0")
    assert search_run(SearchParams(q="copper")).total == 2
    assert search_run(SearchParams(q="copper", filters={"license": ["MIT"]})).total == 1
    assert search_run(SearchParams(q="copper", filters={"license": ["CC0-1.0", "MIT"]})).total == 2


def test_the_most_viewed_order_follows_the_views_at_once(publish):
    from repository.models import UsageCount
    from repository.search import search_views_refresh

    quiet, popular = publish(title="Copper, read rarely"), publish(title="Copper, read often")
    assert titles("copper", sort="mostviewed") == ["Copper, read often", "Copper, read rarely"]
    UsageCount.objects.create(record=quiet.record, version=None, unique_views=50)
    search_views_refresh(record_ids=[quiet.record_id, popular.record_id])
    assert titles("copper", sort="mostviewed") == ["Copper, read rarely", "Copper, read often"]


@pytest.mark.django_db(transaction=True)
def test_counts_stay_right_when_the_generation_row_is_gone(publish):
    # A flushed database (as between these transactional tests) has no generation row until the next change.
    from repository.models import SearchIndexState

    SearchIndexState.objects.all().delete()
    publish(title="Copper at low temperature", license="MIT")
    assert licences("copper") == (1, {"MIT": 1})
    SearchIndexState.objects.all().delete()
    assert licences("copper") == (1, {"MIT": 1})
    publish(title="Copper at high temperature", license="MIT")
    assert licences("copper") == (2, {"MIT": 2})
