"""The facet counts and the total are cached per search, and every change to the index makes them stale at once:
a reader never sees counts that disagree with the hits."""

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


def test_counts_follow_a_publication_a_correction_and_a_withdrawal(publish, user):
    first = publish(title="Copper at low temperature", license="MIT")
    assert licences("copper") == (1, {"MIT": 1})

    publish(title="Copper at high temperature", license="MIT")
    assert licences("copper") == (2, {"MIT": 2})

    version_correct_metadata(version=first, actor=user, reason="licence",
                             metadata={**version_metadata(first), "license": "CC0-1.0"})
    assert licences("copper") == (2, {"MIT": 1, "CC0-1.0": 1})

    version_withdraw(version=first, actor=UserFactory(is_superuser=True), reason="Wrong data.")
    assert licences("copper") == (1, {"MIT": 1})


def test_a_repeated_search_asks_the_database_only_for_its_page(publish, django_assert_num_queries):
    publish(title="Copper", license="MIT", keywords=["materials"])
    first = search_run(SearchParams(q="copper"))
    # the index's generation and the page of hits (no community to label)
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
