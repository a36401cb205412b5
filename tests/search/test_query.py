"""What a reader typing into the search box gets: ranking, phrases, OR, exclusions, fields, identifiers, facets."""

import pytest

from repository.errors import InvalidInput
from repository.models import ExecutionRun
from repository.search import SearchParams, search_run
from repository.search.query import parse_query
from tests.search.conftest import found

pytestmark = pytest.mark.django_db

ORCID = "0000-0002-1825-0097"


def test_title_ranks_above_creators_and_keywords_above_description_above_notebook_text(publish):
    # Published in the reverse order, so the newest-first tie-break would give the opposite order.
    publish(title="Notebook hit", notebook_text="zebrafish " * 30)
    publish(title="Description hit", description="Larval zebrafish swimming speed, zebrafish again.")
    publish(title="Keyword hit", keywords=["zebrafish"])
    publish(title="Title hit: zebrafish")
    assert found("zebrafish") == ["Title hit: zebrafish", "Keyword hit", "Description hit", "Notebook hit"]


def test_phrase_or_and_exclusion(publish):
    # (Words of the demo notebook every version here has, such as "thermal expansion", are avoided.)
    publish(title="Seismic tomography of Iceland")
    publish(title="Tomography, seismic and otherwise", description="Imaging.")
    publish(title="Ocean heat content")
    assert found('"seismic tomography"') == ["Seismic tomography of Iceland"]
    assert sorted(found("iceland OR ocean")) == ["Ocean heat content", "Seismic tomography of Iceland"]
    assert found("tomography -iceland") == ["Tomography, seismic and otherwise"]
    assert found("seismic -\"seismic tomography\"") == ["Tomography, seismic and otherwise"]


def test_fields(publish):
    publish(title="Copper rods", creators=[{"name": "Rossi, Marco", "orcid": ORCID}], keywords=["Materials"])
    publish(title="Rossi's theorem revisited", description="About copper.", creators=[{"name": "Doe, Jane"}])
    assert found("title:copper") == ["Copper rods"]
    assert found("title:rossi") == ["Rossi's theorem revisited"]
    assert found("creator:rossi") == ["Copper rods"]
    assert found("creator:\"Doe, Jane\"") == ["Rossi's theorem revisited"]
    assert found("keyword:materials") == ["Copper rods"]
    assert found(f"orcid:{ORCID}") == ["Copper rods"]
    assert found("copper -creator:rossi") == ["Rossi's theorem revisited"]


def test_a_doi_or_an_orcid_typed_alone_finds_its_record(publish):
    wanted = publish(title="The one", creators=[{"name": "Rossi, Marco", "orcid": ORCID}])
    publish(title="Another one")
    assert found(wanted.doi) == ["The one"]
    assert found(f"https://doi.org/{wanted.doi.upper()}") == ["The one"]
    assert found(wanted.record.concept_doi) == ["The one"]
    assert found(f"doi:{wanted.doi}") == ["The one"]
    assert found(ORCID) == ["The one"]
    assert found(f"https://orcid.org/{ORCID}") == ["The one"]


@pytest.mark.parametrize("q", ['"unbalanced quote', 'copper OR', "OR copper", "- -- ---", '""', "***", "copper)",
                               "title:", "https://example.org/a:b", "'; DROP TABLE x; --", "NOT AND OR", "copper*",
                               "{title}: x", "NEAR(copper ocean)", "^copper", "_", "__init__", "日本語", "🙂x",
                               "title:_", "creator:-", "x" * 300, "copper AND ocean", "c++ OR c#"])
def test_odd_queries_are_read_leniently(publish, q):
    publish(title="Thermal expansion of copper")
    search_run(SearchParams(q=q))  # no error


@pytest.mark.parametrize(("q", "message"), [("colour:red", "Unknown field 'colour'"),
                                            ("orcid:1234", "is not an ORCID iD"),
                                            ("x" * 1001, "too long")])
def test_queries_that_cannot_be_read_are_refused_with_a_reason(db, q, message):
    with pytest.raises(InvalidInput) as error:
        parse_query(q)
    assert message in error.value.detail or message in str(error.value.field_errors)


def test_unbalanced_quote_is_a_phrase_to_the_end(publish):
    publish(title="Thermal expansion of copper")
    assert found('"thermal expansion') == ["Thermal expansion of copper"]


def _finished_run(version, verdict):
    from django.utils import timezone

    ExecutionRun.objects.create(version=version, runner="local", notebook_path=version.notebook_path,
                                status="finished", verdict=verdict, finished_at=timezone.now())


def test_facets_count_and_filter(publish, user, moderator):
    a = publish(title="A", license="MIT", keywords=["DFT", "materials"],
                creators=[{"name": "Rossi, Marco", "orcid": ORCID}])
    publish(title="B", license="MIT", keywords=["materials"], resource_type="Dataset")
    publish(title="C", license="CC0-1.0", keywords=["climate"], creators=[{"name": "Doe, Jane"}])
    _finished_run(a, "reproduced")
    from repository.search import search_index_version

    search_index_version(version=a)

    result = search_run(SearchParams())
    buckets = {name: {b["key"]: b["doc_count"] for b in values} for name, values in result.aggregations.items()}
    assert result.total == 3
    assert buckets["license"] == {"MIT": 2, "CC0-1.0": 1}
    assert buckets["keyword"] == {"materials": 2, "DFT": 1, "climate": 1}
    assert buckets["resource_type"] == {"ComputationalNotebook": 2, "Dataset": 1}
    assert buckets["verdict"] == {"reproduced": 1}
    assert buckets["creator"] == {"Rossi, Marco": 1, "Doe, Jane": 2}  # demo drafts' creator is Doe, Jane
    assert sum(buckets["year"].values()) == 3

    assert found(filters={"license": ["MIT"]}) == ["B", "A"]
    assert found(filters={"license": ["MIT", "CC0-1.0"]}) == ["C", "B", "A"]
    assert found(filters={"keyword": ["Materials"], "resource_type": ["Dataset"]}) == ["B"]
    assert found(filters={"creator": [ORCID]}) == ["A"]
    assert found(filters={"creator": ["doe, jane"]}) == ["C", "B"]
    assert found(filters={"verdict": ["reproduced"]}) == ["A"]

    # A facet's own filter does not narrow its counts (so a second licence can be ticked); the others do.
    narrowed = search_run(SearchParams(filters={"license": ["MIT"]})).aggregations
    assert {b["key"]: b["doc_count"] for b in narrowed["license"]} == {"MIT": 2, "CC0-1.0": 1}
    assert {b["key"]: b["doc_count"] for b in narrowed["keyword"]} == {"materials": 2, "DFT": 1}
    assert [b["is_selected"] for b in narrowed["license"]] == [True, False]


@pytest.mark.parametrize(("params", "field"), [({"size": 100000}, "size"), ({"size": 0}, "size"),
                                               ({"page": -1}, "page"), ({"page": 2000, "size": 10}, "page"),
                                               ({"sort": "random"}, "sort"),
                                               ({"filters": {"year": ["last"]}}, "year"),
                                               ({"filters": {"verdict": ["great"]}}, "verdict")])
def test_bad_parameters_are_refused_naming_the_parameter(db, params, field):
    with pytest.raises(InvalidInput) as error:
        search_run(SearchParams(**params))
    assert field in error.value.field_errors


def test_paging_and_newest_first(publish):
    for title in ("one", "two", "three"):
        publish(title=f"Record {title}")
    first = search_run(SearchParams(size=2))
    second = search_run(SearchParams(size=2, page=2))
    assert [h.title for h in first.hits] == ["Record three", "Record two"]
    assert [h.title for h in second.hits] == ["Record one"]
    assert (first.total, second.total, first.has_next, second.has_next) == (3, 3, True, False)
    assert [h.title for h in search_run(SearchParams(sort="mostviewed", size=2)).hits] == ["Record three",
                                                                                         "Record two"]
