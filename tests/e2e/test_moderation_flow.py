"""The moderation flow in a real browser: submit, changes requested, edit and resubmit, accept, landing page.

Two people share one browser in turn (cookies cleared between them): the submitter and a moderator of the
community. Verification runs are worked off by the test as in test_deposit_flow.
"""

import io

import pytest
import requests

from moderation.models import Community, ReviewRequest
from repository import demo
from repository.models import Version
from repository.services.drafts import record_create
from repository.services.files import draft_file_upload
from tests.e2e.test_deposit_flow import IMAGE, click, fill_field, login, open_page, wait_for, work_off
from tests.factories import UserFactory, sync_pending
from tests.sandbox import needs_sandbox

pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sandbox, needs_sandbox]


def complete_draft(owner) -> Version:
    version = record_create(owner=owner, metadata={
        "title": "Thermal expansion of copper", "description": "Fits the expansion coefficient.",
        "license": "CC-BY-4.0", "creators": [{"name": "Curie, Marie", "orcid": "0000-0002-1825-0097"}],
        "container_image": IMAGE})
    for path, data in (("thermal_expansion.ipynb", demo.notebook()), (demo.DATA_PATH, demo.measurements_csv())):
        draft_file_upload(version=version, actor=owner, path=path, stream=io.BytesIO(data), content_length=len(data))
    return version


def switch_user(browser, live_server, username: str) -> None:
    browser.delete_all_cookies()
    login(browser, live_server, username)


def act(browser, action: str, comment: str = "") -> None:
    if comment:
        fill_field(browser, "decision-comment", comment)
    click(browser, f"#decision-form button[value={action}]")
    wait_for(browser, EC.presence_of_element_located((By.CSS_SELECTOR, ".message")),
             message=f"{action} gave no message")


def test_request_changes_resubmit_accept_and_publish(browser, screenshot, live_server, verification_queue, settings):
    settings.SITE_URL = live_server.url  # the URL the DOI is registered with
    submitter = UserFactory(username="submitter")
    moderator = UserFactory(username="moderator")
    Community.objects.create(slug="general", name="General").moderators.add(moderator)
    version = complete_draft(submitter)
    record_id = version.record.public_id
    draft_url = f"{live_server.url}/uploads/{record_id}/"

    # The submitter submits from the draft page (the confirm dialog is accepted by site.js's data-confirm).
    login(browser, live_server, "submitter")
    open_page(browser, draft_url, "Thermal expansion of copper")
    browser.execute_script("window.confirm = function () { return true; };")
    click(browser, "#submission-status button[type=submit]")
    wait_for(browser, EC.text_to_be_present_in_element((By.ID, "submission-status"), "Submitted for review"))
    work_off(verification_queue)

    # The moderator finds it in the queue with its verdict and asks for a change.
    switch_user(browser, live_server, "moderator")
    open_page(browser, f"{live_server.url}/requests/", "Review requests")
    assert "Reproduced" in browser.find_element(By.CSS_SELECTOR, "main table").text
    screenshot("moderation-queue")
    click(browser, "main table a")
    wait_for(browser, EC.text_to_be_present_in_element((By.ID, "review-state"), "Submitted"))
    screenshot("moderation-request")
    act(browser, "request_changes", "Please say in the title that this is a demo.")
    assert "Changes requested" in browser.find_element(By.ID, "review-state").text

    # The submitter edits the draft and resubmits on the request page.
    switch_user(browser, live_server, "submitter")
    open_page(browser, f"{draft_url}edit/", "Describe your upload")
    fill_field(browser, "id_title", "Thermal expansion of copper (demo)")
    click(browser, "form button.primary[type=submit]")
    wait_for(browser, EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "(demo)"))
    click(browser, "#review-link")
    assert "Please say in the title" in browser.find_element(By.ID, "timeline").text
    act(browser, "resubmit")
    assert "Resubmitted" in browser.find_element(By.ID, "review-state").text
    work_off(verification_queue)

    # The moderator accepts; the version is publishing until the DOI sync (the worker's job) registers its DOI.
    switch_user(browser, live_server, "moderator")
    review = ReviewRequest.objects.get()
    open_page(browser, f"{live_server.url}/requests/{review.pk}/", "Thermal expansion of copper (demo)")
    act(browser, "accept")
    assert "Accepted" in browser.find_element(By.ID, "review-state").text
    screenshot("moderation-accepted")
    assert Version.objects.get(pk=version.pk).state == Version.State.PUBLISHING
    sync_pending()
    version.refresh_from_db()
    assert version.state == Version.State.PUBLISHED

    # The landing page shows the verdict and the citation; the DOI resolves back to it.
    open_page(browser, f"{live_server.url}/records/{record_id}/", "Thermal expansion of copper (demo)")
    assert "Reproduced" in browser.find_element(By.ID, "verdict").text
    assert version.doi in browser.find_element(By.ID, "citation").text
    screenshot("landing-page")
    click(browser, "#version-doi")
    wait_for(browser, EC.url_contains(f"/records/{record_id}/versions/1/"))
    assert "Thermal expansion of copper (demo)" in browser.find_element(By.TAG_NAME, "h1").text

    # Harvesters find it over OAI-PMH.
    oai = requests.get(f"{live_server.url}/oai", params={"verb": "ListRecords", "metadataPrefix": "oai_dc"}, timeout=30)
    assert oai.status_code == 200 and f"{record_id}/v1</identifier>" in oai.text and version.doi in oai.text
