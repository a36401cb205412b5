"""A harvest that goes on while versions are published and withdrawn: pages are positions, not offsets, so no
item is skipped, none that stayed unchanged comes twice, and withdrawals reach the harvester as deletions."""

import datetime

import pytest

from repository.services.published import version_withdraw

from .conftest import NS, oai_id

pytestmark = pytest.mark.django_db


def next_page(oai, response):
    return oai(verb="ListRecords", resumptionToken=response.token.text)


def headers(response) -> list[tuple[str, str | None]]:
    return [(h.findtext("oai:identifier", namespaces=NS), h.get("status")) for h in response.findall(".//oai:header")]


def test_publishing_and_withdrawing_during_a_harvest(oai, publish, moderator, settings):
    settings.OAI_PAGE_SIZE = 4
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    # Twelve versions, one an hour; the last three share one second (ordered by id within it).
    versions = [publish(at=start + datetime.timedelta(hours=min(i, 9))) for i in range(12)]

    harvested = []
    response = oai(verb="ListRecords", metadataPrefix="oai_dc")
    harvested += headers(response)
    assert response.token.get("completeListSize") == "12"

    # While the harvester holds its token: new versions are published (they would push an offset-paged list
    # forward by two), one version already harvested and one not yet harvested are withdrawn.
    new_first, new_second = publish(), publish()
    already_harvested, not_yet_harvested = versions[1], versions[6]
    version_withdraw(version=already_harvested, actor=moderator, reason="Duplicate.")
    version_withdraw(version=not_yet_harvested, actor=moderator, reason="Wrong data.")

    while response.token is not None and response.token.text:
        response = next_page(oai, response)
        harvested += headers(response)

    identifiers = [identifier for identifier, _ in harvested]
    # Nothing skipped, nothing that stayed the same twice: the versions unchanged since the harvest began come
    # once, in datestamp order; then everything that changed meanwhile, in the order it changed.
    first_page, rest = versions[:4], [v for v in versions[4:] if v != not_yet_harvested]
    changed_meanwhile = [new_first, new_second, already_harvested, not_yet_harvested]
    assert identifiers == [oai_id(v) for v in first_page + rest + changed_meanwhile]
    # The version withdrawn before the harvest reached it came once, as deleted; the one withdrawn after it was
    # harvested came again, deleted, so the harvester learns of it.
    assert harvested.count((oai_id(not_yet_harvested), "deleted")) == 1
    assert (oai_id(not_yet_harvested), None) not in harvested
    assert harvested.count((oai_id(already_harvested), None)) == 1
    assert harvested.count((oai_id(already_harvested), "deleted")) == 1
    assert response.token.get("completeListSize") == str(len(harvested))


def test_an_incremental_harvest_from_the_last_response_date_sees_the_changes(oai, publish, moderator):
    old = publish(at=datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC))
    withdrawn = publish(at=datetime.datetime(2024, 1, 2, tzinfo=datetime.UTC))
    first = oai(verb="ListIdentifiers", metadataPrefix="oai_dc")
    response_date = first.text("oai:responseDate")

    new = publish()
    version_withdraw(version=withdrawn, actor=moderator, reason="Duplicate.")
    later = oai(verb="ListIdentifiers", metadataPrefix="oai_dc", from_=response_date)

    assert first.identifiers == [oai_id(old), oai_id(withdrawn)]
    assert sorted(headers(later)) == sorted([(oai_id(new), None), (oai_id(withdrawn), "deleted")])
