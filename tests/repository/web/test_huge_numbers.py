"""Numbers too large for the database or for a date, in paths and query strings: a 404 or a 400, never a 500.

Every route with an integer in its path is asked for with a number past any database integer, by GET and POST,
as a signed-in administrator (who reaches the most code), so a new route is covered without being listed here.
"""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

HUGE = "99999999999999999999999"


def _routes(patterns, prefix: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern)


def _paths_with_huge_numbers() -> list[str]:
    paths = []
    for route in _routes(get_resolver().url_patterns):
        if "<int:" not in route or route.startswith("^") or route.startswith("admin/"):
            continue
        path = re.sub(r"<int:\w+>", HUGE, route)
        path = re.sub(r"<str:\w+>", "abcde-12345", path)
        path = re.sub(r"<(?:path|anypath):\w+>", "data/file.csv", path)
        paths.append("/" + path)
    return sorted(set(paths))


PATHS = _paths_with_huge_numbers()


def test_the_routes_with_numbers_are_found():
    assert "/sitemap-records-99999999999999999999999.xml" in PATHS
    assert "/api/requests/99999999999999999999999" in PATHS


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.mark.parametrize("path", PATHS)
def test_a_number_past_any_database_integer_is_not_found(admin_client, path):
    for method in (admin_client.get, admin_client.post):
        response = method(path)

        assert response.status_code < 500, (method, path, response.status_code)
    assert admin_client.get(path).status_code in (404, 405)


def test_a_sitemap_page_past_the_last_possible_key_is_not_found(client):
    assert client.get(f"/sitemap-records-{HUGE}.xml").status_code == 404
    assert client.get(f"/sitemap-versions-{HUGE}.xml").status_code == 404
    assert client.get("/sitemap-records-1.xml").status_code == 200


@pytest.mark.parametrize("value", ["99999999999", HUGE, "999999999"])
def test_older_than_too_large_for_a_date_is_a_field_error_in_the_api(api, value):
    response = api.get(f"/api/requests?older_than={value}")

    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    errors = {error["field"]: error["messages"] for error in response.json()["errors"]}
    assert "older_than" in errors


def test_older_than_within_the_calendar_still_filters_in_the_api(api):
    assert api.get("/api/requests?older_than=36500").status_code == 200
    assert api.get("/api/requests?older_than=").status_code == 200


@pytest.mark.parametrize("value", ["99999999999", HUGE])
def test_older_than_too_large_for_a_date_on_the_web_queue_is_a_message_not_a_500(client, user, value):
    client.force_login(user)

    response = client.get(f"/requests/?older_than={value}")

    assert response.status_code == 200
    assert "older_than must be a whole number of days" in response.content.decode()
