"""Access to restricted files in Chromium: a reader asks for access on the landing page of a restricted record, the
owner grants it on the owners' access page, and the reader then downloads the file.

That the reader could not read the file before the grant is asserted through the policy in
tests/repository/access/test_services.py (the download route's enforcement is another module's concern)."""

import pytest
from django.core.cache import cache
from django.urls import reverse

from repository.access.models import AccessGrant, AccessRequest
from repository.models import FileAccess, Version
from tests.e2e.test_deposit_flow import click, fill_field, login, open_page, text_of, visible
from tests.factories import UserFactory, published_version

pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "temperature,expansion\n300,1.7e-05\nonly-for-granted-readers\n"


@pytest.fixture(autouse=True)
def isolated(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    settings.DOI_PROVIDER = "local"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    cache.clear()


@pytest.fixture
def restricted():
    owner, reader = UserFactory(username="owner"), UserFactory(username="reader")
    version = published_version(owner, UserFactory(username="moderator", is_superuser=True),
                                extra_files={"secret.csv": SECRET.encode()}, title="Licensed measurements")
    Version.objects.filter(pk=version.pk).update(access_files=FileAccess.RESTRICTED)
    version.refresh_from_db()
    return version, owner, reader


def test_a_reader_asks_the_owner_grants_and_the_reader_downloads(browser, live_server, restricted, screenshot):
    version, owner, reader = restricted
    record_id = version.record.public_id
    landing = live_server.url + reverse("repository:version_landing", kwargs={"record_id": record_id, "number": 1})

    # The reader asks, with a message.
    login(browser, live_server, reader.username)
    open_page(browser, landing, "Licensed measurements")
    visible(browser, "#request-access-form")
    fill_field(browser, "id_message", "I referee the paper these measurements support.")
    screenshot("access-01-request-form")
    click(browser, "#request-access")
    visible(browser, "#access-pending")
    assert "Your request 1 was sent to the owners" in text_of(browser, "main")
    assert AccessRequest.objects.get().state == AccessRequest.State.PENDING

    # The owner grants it on the owners' access page.
    browser.delete_all_cookies()
    login(browser, live_server, owner.username)
    open_page(browser, landing, "Licensed measurements")
    click(browser, "#manage-access")
    visible(browser, "#request-1")
    assert "I referee the paper these measurements support." in text_of(browser, "#request-1")
    screenshot("access-02-owners-page")
    click(browser, "#accept-1")
    visible(browser, "#grants")
    assert "Request 1 accepted: reader may read the restricted files" in text_of(browser, "main")
    assert AccessGrant.objects.get().user == reader

    # The reader, signed in again, is told and downloads the file.
    browser.delete_all_cookies()
    login(browser, live_server, reader.username)
    open_page(browser, landing, "Licensed measurements")
    visible(browser, "#access-granted")
    link = browser.find_element("css selector", 'a[href$="/files/secret.csv"]')
    screenshot("access-03-granted")
    downloaded = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch(arguments[0], {credentials: 'same-origin'})
          .then(r => r.text().then(body => done({status: r.status, body: body})))
          .catch(e => done({status: 0, body: String(e)}));""", link.get_attribute("href"))
    assert downloaded == {"status": 200, "body": SECRET}
