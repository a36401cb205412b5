"""A reader in a real browser: searches from the home page, narrows the result by a facet, opens a record."""

import pytest

from tests.factories import UserFactory, published_version

pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")
from selenium.webdriver.common.by import By  # after the skip: without selenium the module is skipped, not broken
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.django_db(transaction=True)

WAIT_SECONDS = 15


def wait_for(browser, condition, message: str = ""):
    return WebDriverWait(browser, WAIT_SECONDS).until(condition, message)


def titles(browser) -> list[str]:
    return [a.text for a in browser.find_elements(By.CSS_SELECTOR, ".hits .hit-title")]


def test_search_filter_by_a_facet_and_open_a_result(browser, live_server, screenshot):
    owner, moderator = UserFactory(), UserFactory()
    published_version(owner, moderator, title="Seismic tomography of Iceland", license="MIT",
                      keywords=["geophysics"])
    published_version(owner, moderator, title="Seismic noise in cities", license="CC0-1.0")
    published_version(owner, moderator, title="Ocean heat content", license="MIT")

    browser.get(live_server.url + "/")
    search_box = wait_for(browser, EC.visibility_of_element_located((By.ID, "search-q")), "no search box")
    assert "Ocean heat content" in browser.find_element(By.ID, "newest-records").text
    screenshot("home")
    search_box.send_keys("seismic")
    search_box.submit()
    wait_for(browser, EC.text_to_be_present_in_element((By.ID, "search-total"), "2 records"), "no results")
    assert sorted(titles(browser)) == ["Seismic noise in cities", "Seismic tomography of Iceland"]
    screenshot("search-results")

    browser.find_element(By.CSS_SELECTOR, '[data-facet="license"] a[data-key="MIT"]').click()
    wait_for(browser, EC.text_to_be_present_in_element((By.ID, "search-total"), "1 record"), "the facet did not filter")
    assert titles(browser) == ["Seismic tomography of Iceland"]
    assert "MIT" in browser.find_element(By.CSS_SELECTOR, ".selected-filter").text
    assert browser.find_element(By.ID, "search-q").get_attribute("value") == "seismic"
    screenshot("search-filtered")

    browser.find_element(By.LINK_TEXT, "Seismic tomography of Iceland").click()
    wait_for(browser, EC.text_to_be_present_in_element((By.ID, "record-title"), "Seismic tomography of Iceland"),
             "the landing page did not open")
