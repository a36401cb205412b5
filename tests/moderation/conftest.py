"""Fixtures for moderation tests: a submitted draft, a community, its moderator, a global moderator."""

import pytest
from django.contrib.auth.models import Group

from moderation.models import Community
from tests.factories import UserFactory, submitted_review


@pytest.fixture(autouse=True)
def no_queue(monkeypatch):
    """Verification runs are queued but not executed: moderation decides on the request, not on the run."""
    from repository import tasks

    sent = []
    monkeypatch.setattr(tasks.run_verification_task, "apply_async", lambda *a, **k: sent.append(k))
    return sent


@pytest.fixture
def author(db):
    return UserFactory(username="author")


@pytest.fixture
def community(db):
    return Community.objects.create(slug="materials", name="Materials")


@pytest.fixture
def community_moderator(community):
    user = UserFactory(username="community_moderator")
    community.moderators.add(user)
    return user


@pytest.fixture
def other_community_moderator(db):
    user = UserFactory(username="other_moderator")
    Community.objects.create(slug="biology", name="Biology").moderators.add(user)
    return user


@pytest.fixture
def global_moderator(db):
    user = UserFactory(username="global_moderator")
    user.groups.add(Group.objects.get_or_create(name="moderators")[0])
    return user


@pytest.fixture
def admin_user(db):
    return UserFactory(username="admin", is_staff=True, is_superuser=True)


@pytest.fixture
def review(author, community):
    return submitted_review(author, community)
