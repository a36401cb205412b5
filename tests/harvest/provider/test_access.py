"""OAI-PMH and file access: both formats say the access right the way OpenAIRE harvesters read it, in each
state, valid against oai_dc.xsd and DataCite 4.5 (the `oai` fixture checks every response); the stored payloads
follow a change of access."""

import datetime
import functools
import logging

import pytest
from django.utils import timezone
from lxml import etree

from harvest.models import OaiFragment
from repository import hooks
from repository.models import FileAccess, Version
from repository.selectors import version_metadata
from repository.services.embargoes import embargo_lift, embargoes_lift_due
from repository.services.published import version_correct_metadata
from tests.factories import published_with_access

from .conftest import oai_id
from .test_fragments import assert_fresh

pytestmark = pytest.mark.django_db

EMBARGO_END = datetime.date(2031, 3, 1)


@pytest.fixture
def publish_with(user, moderator):
    """publish_with(access, embargo_until=None, **metadata) -> a version published with that file access."""
    return functools.partial(published_with_access, user, moderator)


def dc(response, element: str) -> list[str]:
    return [e.text for e in response.findall(f".//oai_dc:dc/dc:{element}")]


def datacite_rights(response) -> list[tuple[str, str]]:
    return [(e.get("rightsURI"), e.text) for e in response.findall(".//datacite:rightsList/datacite:rights")]


def files_prefix(version: Version) -> str:
    return f"/records/{version.record.public_id}/versions/{version.number}/files/"


@pytest.mark.parametrize(("access", "embargo_until", "uri", "label"), [
    (FileAccess.OPEN, None, "info:eu-repo/semantics/openAccess", "Open Access"),
    (FileAccess.EMBARGOED, EMBARGO_END, "info:eu-repo/semantics/embargoedAccess", "Embargoed Access"),
    (FileAccess.RESTRICTED, None, "info:eu-repo/semantics/restrictedAccess", "Restricted Access"),
])
def test_both_formats_carry_the_access_right(oai, publish_with, access, embargo_until, uri, label):
    version = publish_with(access, embargo_until, license="CC-BY-4.0")

    oai_dc = oai(verb="GetRecord", identifier=oai_id(version), metadataPrefix="oai_dc")
    datacite = oai(verb="GetRecord", identifier=oai_id(version), metadataPrefix="oai_datacite")

    assert dc(oai_dc, "rights") == ["https://spdx.org/licenses/CC-BY-4.0", uri]
    assert datacite_rights(datacite)[1] == (uri, label)
    available = [e.text for e in datacite.findall(".//datacite:dates/datacite:date[@dateType='Available']")]
    published = version.published_at.astimezone(datetime.UTC).date().isoformat()
    if access == FileAccess.EMBARGOED:
        assert dc(oai_dc, "date") == [published, "info:eu-repo/date/embargoEnd/2031-03-01"]
        assert available == ["2031-03-01"]
    else:
        assert dc(oai_dc, "date") == [published]
        assert available == []
    for response in (oai_dc, datacite):
        assert files_prefix(version) not in etree.tostring(response.root, encoding="unicode")


def test_a_change_of_access_rewrites_the_stored_payloads(oai, publish_with):
    version = publish_with(FileAccess.EMBARGOED, EMBARGO_END)
    assert "embargoedAccess" in OaiFragment.objects.get(version=version).oai_dc

    # What lifting the embargo does: the row changes, the datestamp moves, the core announces a correction.
    Version.objects.filter(pk=version.pk).update(access_files=FileAccess.OPEN, public_changed_at=timezone.now())
    version.refresh_from_db()
    hooks.send("version_corrected", version=version, actor=None, fields=["access"], reason="Embargo lifted.")

    assert_fresh(version)
    response = oai(verb="ListRecords", metadataPrefix="oai_dc")
    assert dc(response, "rights")[-1] == "info:eu-repo/semantics/openAccess"
    assert not [d for d in dc(response, "date") if "embargoEnd" in d]
    header_datestamp = response.find(".//oai:header/oai:datestamp").text
    assert header_datestamp == version.public_changed_at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_payload_written_before_a_change_of_access_is_never_served(oai, publish_with, caplog):
    """Even if nothing rewrote the row, the moved datestamp makes it out of date: it is rebuilt, not served."""
    version = publish_with(FileAccess.OPEN)
    Version.objects.filter(pk=version.pk).update(access_files=FileAccess.RESTRICTED,
                                                 public_changed_at=timezone.now())

    response = oai(verb="GetRecord", identifier=oai_id(version), metadataPrefix="oai_dc")

    assert dc(response, "rights")[-1] == "info:eu-repo/semantics/restrictedAccess"
    assert "built them on the fly" in caplog.text


# Each service that changes a version's access, through the real code path: the payloads are rewritten in its
# transaction, so pages serve them straight from the rows (no rebuild on the fly) and they say the new access.

def assert_served_open(oai, version, caplog) -> None:
    assert_fresh(version)
    with caplog.at_level(logging.WARNING, logger="harvest.provider.fragments"):
        for response in (oai(verb="ListRecords", metadataPrefix="oai_dc"),
                         oai(verb="GetRecord", identifier=oai_id(version), metadataPrefix="oai_dc")):
            assert dc(response, "rights")[-1] == "info:eu-repo/semantics/openAccess"
        datacite = oai(verb="ListRecords", metadataPrefix="oai_datacite")
        assert ("info:eu-repo/semantics/openAccess", "Open Access") in datacite_rights(datacite)
    assert "built them on the fly" not in caplog.text


def test_lifting_an_embargo_early_rewrites_the_stored_payloads(oai, publish_with, user, caplog):
    version = publish_with(FileAccess.EMBARGOED, EMBARGO_END)
    published_at = version.public_changed_at

    embargo_lift(version=version, actor=user)

    version.refresh_from_db()
    assert version.public_changed_at > published_at
    assert_served_open(oai, version, caplog)


def test_the_daily_lift_rewrites_the_stored_payloads(oai, publish_with, caplog):
    version = publish_with(FileAccess.EMBARGOED, EMBARGO_END)

    assert len(embargoes_lift_due(on=EMBARGO_END)) == 1

    assert_served_open(oai, version, caplog)


def test_a_correction_that_opens_the_files_rewrites_the_stored_payloads(oai, publish_with, user, caplog):
    version = publish_with(FileAccess.RESTRICTED)
    metadata = version_metadata(version)
    metadata["access"] = {**metadata["access"], "files": FileAccess.OPEN}

    version_correct_metadata(version=version, actor=user, reason="Cleared for release.", metadata=metadata)

    version.refresh_from_db()
    assert version.access_files == FileAccess.OPEN
    assert_served_open(oai, version, caplog)
