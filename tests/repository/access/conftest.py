"""What the access tests start from: a record whose published version's files are restricted, its owner, a
reader who is not an owner, and API clients signed in as each."""

import pytest
from rest_framework.test import APIClient

from repository.models import FileAccess, Version
from repository.services.tokens import token_create
from tests.factories import UserFactory, published_version

SECRET = b"temperature,expansion\n300,1.7e-05\nrestricted-marker\n"


@pytest.fixture
def owner(db):
    return UserFactory(username="owner", first_name="Olga", last_name="Owner")


@pytest.fixture
def reader(db):
    return UserFactory(username="reader", first_name="Rita", last_name="Reader")


@pytest.fixture
def moderator(db):
    return UserFactory(username="moderator")


def restrict(version: Version, access: str = FileAccess.RESTRICTED, until=None) -> Version:
    Version.objects.filter(pk=version.pk).update(access_files=access, embargo_until=until)
    version.refresh_from_db()
    return version


@pytest.fixture
def restricted(owner, moderator) -> Version:
    """A published version with a restricted file `secret.csv` (and the demo notebook and data)."""
    return restrict(published_version(owner, moderator, extra_files={"secret.csv": SECRET}))


def client_for(user) -> APIClient:
    _, raw = token_create(user=user, name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client
