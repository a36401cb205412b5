"""The access policy: who reads a version's files in each access state (the route-by-route matrix lives in
test_routes.py)."""

import datetime

import pytest
from django.contrib.auth.models import AnonymousUser, Group

from repository.access.models import AccessGrant
from repository.access.policy import can_read_files, effective_access, files_are_open
from repository.models import FileAccess, Version
from repository.permissions import MODERATORS_GROUP
from tests.factories import UserFactory, published_version

pytestmark = pytest.mark.django_db

TODAY = datetime.date(2027, 3, 1)


@pytest.fixture
def moderator():
    moderator = UserFactory()
    moderator.groups.add(Group.objects.get_or_create(name=MODERATORS_GROUP)[0])
    return moderator


def _with_access(version: Version, access: str, until: datetime.date | None = None) -> Version:
    Version.objects.filter(pk=version.pk).update(access_files=access, embargo_until=until)
    version.refresh_from_db()
    return version


def test_an_embargo_opens_on_its_day_whether_or_not_the_lift_job_ran(user, moderator):
    version = _with_access(published_version(user, moderator), FileAccess.EMBARGOED, TODAY)
    day_before = TODAY - datetime.timedelta(days=1)
    assert effective_access(version, on=day_before) == FileAccess.EMBARGOED
    assert not can_read_files(AnonymousUser(), version, on=day_before)
    assert files_are_open(version, on=TODAY)
    assert can_read_files(AnonymousUser(), version, on=TODAY)


def test_restricted_files_open_to_owners_moderators_grants_and_share_links_only(user, moderator):
    version = _with_access(published_version(user, moderator), FileAccess.RESTRICTED)
    stranger, grantee = UserFactory(), UserFactory()
    AccessGrant.objects.create(record=version.record, user=grantee, until=TODAY, granted_by=user)

    assert can_read_files(user, version, on=TODAY)
    assert can_read_files(moderator, version, on=TODAY)
    assert can_read_files(grantee, version, on=TODAY)
    assert not can_read_files(grantee, version, on=TODAY + datetime.timedelta(days=1))  # the grant ended
    assert not can_read_files(stranger, version, on=TODAY)
    assert not can_read_files(AnonymousUser(), version, on=TODAY)
    assert can_read_files(AnonymousUser(), version, shared_record_ids=frozenset({version.record_id}), on=TODAY)


def test_a_grant_or_share_link_does_not_open_an_embargo(user, moderator):
    version = _with_access(published_version(user, moderator), FileAccess.EMBARGOED, TODAY + datetime.timedelta(9))
    grantee = UserFactory()
    AccessGrant.objects.create(record=version.record, user=grantee, granted_by=user)
    assert not can_read_files(grantee, version, shared_record_ids=frozenset({version.record_id}), on=TODAY)
    assert can_read_files(user, version, on=TODAY)


def test_revoked_grants_let_no_one_in(user, moderator):
    version = _with_access(published_version(user, moderator), FileAccess.RESTRICTED)
    grantee = UserFactory()
    AccessGrant.objects.create(record=version.record, user=grantee, granted_by=user, revoked_at=version.published_at)
    assert not can_read_files(grantee, version)
