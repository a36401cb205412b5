"""The deposit flow in a real browser: log in, describe a draft, upload its files, submit it, read the report.

The live server runs in a thread of this process. Submitting queues the verification task at commit
(transaction.on_commit + apply_async); here `apply_async` only records the task, and the test then plays the
worker: it runs the recorded task with Celery's `apply`, while the browser, like a user's, polls the run (runs.js)
and shows the verdict. So the page's "queued" state and its live update are exercised too, and no broker or
worker process is needed.
"""

import json

import pytest

from repository import demo
from repository.models import ExecutionRun, Version
from repository.services.drafts import record_create
from tests.sandbox import needs_sandbox

pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")
from selenium.webdriver.common.by import By  # after the skip: without selenium the module is skipped, not broken
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct horse battery staple"  # tests.factories.UserFactory's
ORCID = "0000-0002-1825-0097"
IMAGE = "registry.example.org/group/image@sha256:" + "0123456789abcdef" * 4
WAIT_SECONDS = 15  # for a page or an element
RUN_SECONDS = 180  # for the sandboxed run


# --- helpers -------------------------------------------------------------------------------------------------

def wait_for(browser, condition, timeout: float = WAIT_SECONDS, message: str = ""):
    """Wait until `condition(browser)` is truthy and return its value."""
    return WebDriverWait(browser, timeout).until(condition, message)


def visible(browser, css: str, timeout: float = WAIT_SECONDS):
    return wait_for(browser, EC.visibility_of_element_located((By.CSS_SELECTOR, css)), timeout, f"{css} not visible")


def text_of(browser, css: str) -> str:
    return browser.find_element(By.CSS_SELECTOR, css).text


def fill_field(browser, field_id: str, value: str) -> None:
    field = browser.find_element(By.ID, field_id)
    field.clear()
    field.send_keys(value)


def click(browser, css: str) -> None:
    wait_for(browser, EC.element_to_be_clickable((By.CSS_SELECTOR, css)), message=f"{css} not clickable").click()


def open_page(browser, url: str, heading: str) -> None:
    browser.get(url)
    wait_for(browser, EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), heading), message=f"no page {heading!r}")


def login(browser, live_server, username: str, password: str = PASSWORD) -> None:
    open_page(browser, live_server.url + "/accounts/login/", "Log in")
    fill_field(browser, "id_login", username)
    fill_field(browser, "id_password", password)
    click(browser, "main form.panel button[type=submit]")
    # LOGIN_REDIRECT_URL is "My uploads".
    wait_for(browser, EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "My uploads"), message="login failed")
    assert text_of(browser, ".account-nav .who") == username


def upload_file(browser, path, folder: str = "") -> None:
    """Choose one file in the draft page's upload form, start it and wait until the server has stored it."""
    fill_field(browser, "upload-folder", folder)
    browser.find_element(By.ID, "upload-files").send_keys(str(path))
    click(browser, "[data-upload-start]")
    wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, ".upload-item.done, .upload-item.failed"),
             message="the upload did not finish")


def upload_items(browser) -> list[dict]:
    """What the upload list shows, one dict per file; "shown" means really rendered (computed style)."""
    return browser.execute_script("""
        function shown(element) { return !!element && getComputedStyle(element).display !== 'none'; }
        return Array.from(document.querySelectorAll('[data-upload-list] .upload-item')).map(function (item) {
          var bar = item.querySelector('progress');
          return {path: (item.querySelector('.upload-path') || {}).textContent, state: item.className,
                  status: item.querySelector('.upload-status').innerText, progress: bar ? bar.value : null,
                  barShown: shown(bar), cancelShown: shown(item.querySelector('[data-upload-cancel]'))};
        });""")


def throttle_uploads(browser, bytes_per_second: int | None) -> None:
    """Slow the browser's uploads down (DevTools protocol), so that a progress bar can be watched; None: full speed."""
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": bytes_per_second or -1})


def listed_files(browser) -> list[str]:
    return [link.text for link in browser.find_elements(By.CSS_SELECTOR, "#file-list table.files td:first-child a")]


def wait_for_files(browser, expected: set[str]) -> None:
    # upload.js re-reads the page from the server and swaps in the new file list.
    wait_for(browser, lambda b: expected <= set(listed_files(b)), message=f"the file list never showed {expected}")


def work_off(queue: list) -> None:
    """Do what a Celery worker would: run each queued verification task, here and now."""
    from repository.tasks import run_verification_task

    while queue:
        args, kwargs = queue.pop(0)
        assert kwargs.get("queue") == "verification"
        run_verification_task.apply(args=kwargs.get("args", args)).get(timeout=RUN_SECONDS)  # raises what it raised


# --- the whole flow --------------------------------------------------------------------------------------------

@pytest.mark.sandbox
@needs_sandbox
def test_deposit_upload_submit_and_read_the_reproducibility_report(
        browser, screenshot, live_server, user, verification_queue, tmp_path, upload_checks):
    browser.get(live_server.url + "/accounts/login/")
    visible(browser, "#id_login")
    screenshot("01-login")
    login(browser, live_server, user.username)
    screenshot("02-my-uploads-empty")

    # A new draft.
    click(browser, ".site-nav a[href$='/uploads/new/']")
    wait_for(browser, EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "New upload"))
    fill_field(browser, "id_title", "Thermal expansion of copper")
    click(browser, "main form.panel button[type=submit]")
    wait_for(browser, EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Describe your upload"))
    assert "created" in text_of(browser, ".messages")
    version = Version.objects.get(record__owners=user)

    # Its metadata.
    assert browser.find_element(By.ID, "id_title").get_attribute("value") == "Thermal expansion of copper"
    fill_field(browser, "id_description", "Fits the linear expansion coefficient of a copper rod.")
    fill_field(browser, "id_license", "CC-BY-4.0")
    fill_field(browser, "id_creators-0-name", "Doe, Jane")
    fill_field(browser, "id_creators-0-orcid", ORCID)
    fill_field(browser, "id_container_image", IMAGE)
    screenshot("03-edit-form-filled")
    click(browser, ".form-actions button[type=submit]")
    wait_for(browser, EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Thermal expansion of copper"))
    assert "Saved." in text_of(browser, ".messages")
    metadata = text_of(browser, "#metadata-summary")
    assert "Doe, Jane" in metadata and f"ORCID {ORCID}" in metadata and "CC-BY-4.0" in metadata and IMAGE in metadata
    assert "a notebook" in text_of(browser, "#submission-status")  # what submission still needs

    # Its files: the notebook at the top, the data under data/.
    notebook = tmp_path / "thermal_expansion.ipynb"
    notebook.write_bytes(demo.notebook())
    csv = tmp_path / "measurements.csv"
    csv.write_bytes(demo.measurements_csv())
    upload_file(browser, notebook)
    wait_for_files(browser, {"thermal_expansion.ipynb"})
    upload_file(browser, csv, folder="data")
    wait_for_files(browser, {"thermal_expansion.ipynb", demo.DATA_PATH})
    [item] = upload_items(browser)
    assert item["path"] == demo.DATA_PATH and "done" in item["state"] and item["status"] == "Uploaded."
    assert item["progress"] == 100 and item["barShown"]
    assert "thermal_expansion.ipynb" in text_of(browser, "#metadata-summary")  # chosen as the notebook to run
    screenshot("04-draft-after-upload")

    # Submit: the button asks for confirmation first (site.js, data-confirm).
    click(browser, "#submission-status button[type=submit]")
    alert = wait_for(browser, EC.alert_is_present(), message="no confirmation asked")
    assert "Submit for review?" in alert.text
    alert.accept()
    wait_for(browser, EC.text_to_be_present_in_element((By.ID, "submission-status"), "Submitted for review"))
    assert "Queued" in text_of(browser, "#runs [data-run-status]") and len(verification_queue) == 1
    screenshot("05-draft-submitted-run-queued")
    work_off(verification_queue)
    # runs.js polls the run and reloads the page once it has ended.
    wait_for(browser, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "#runs tbody"), "Reproduced"),
             timeout=RUN_SECONDS, message="the page never showed the run's verdict")
    assert "Finished" in text_of(browser, "#runs [data-run-status]")
    assert not browser.find_elements(By.ID, "upload")  # a submitted draft's files cannot change
    screenshot("06-draft-run-finished")
    run = ExecutionRun.objects.get(version=version)
    assert (run.status, run.verdict, run.notebook_path) == ("finished", "reproduced", "thermal_expansion.ipynb")

    # The report.
    click(browser, "#runs a[href*='/runs/']")
    wait_for(browser, EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Reproducibility report"))
    verdict = browser.find_element(By.ID, "verdict")
    assert verdict.text.startswith("Reproduced.") and "success" in verdict.get_attribute("class")
    assert "2 identical" in text_of(browser, "dl.summary")
    cells = browser.find_elements(By.CSS_SELECTOR, ".cell-report")
    assert len(cells) == len(demo.CELLS) == 2
    for cell, source in zip(cells, demo.CELLS, strict=True):
        assert cell.find_element(By.CSS_SELECTOR, ".badge").text == "Identical"
        cell.find_element(By.TAG_NAME, "summary").click()  # open "Source and outputs"
        assert cell.find_element(By.CSS_SELECTOR, "pre.output").text == source
    screenshot("07-run-report")

    # The upload is listed as in review.
    click(browser, ".site-nav a[href$='/uploads/']")
    wait_for(browser, EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "My uploads"))
    [row] = browser.find_elements(By.CSS_SELECTOR, "main table tbody tr")
    title, record, _number, state, file_count = [cell.text for cell in row.find_elements(By.TAG_NAME, "td")][:5]
    assert (title, record, state, file_count) == ("Thermal expansion of copper", version.record.public_id,
                                                  "In review", "2")
    screenshot("08-my-uploads-in-review")


# --- what the forms refuse -----------------------------------------------------------------------------------

def test_an_invalid_orcid_and_an_invalid_notebook_are_refused_with_the_servers_words(
        browser, screenshot, live_server, user, tmp_path, upload_checks):
    version = record_create(owner=user, metadata={"title": "Before"})
    record_id = version.record.public_id
    login(browser, live_server, user.username)

    # The edit form: a wrong check digit in the ORCID iD.
    open_page(browser, f"{live_server.url}/uploads/{record_id}/edit/", "Describe your upload")
    fill_field(browser, "id_title", "After")
    fill_field(browser, "id_creators-0-name", "Doe, Jane")
    fill_field(browser, "id_creators-0-orcid", "0000-0002-1825-0098")
    click(browser, ".form-actions button[type=submit]")
    error = visible(browser, ".field-orcid.has-error .errorlist")
    assert "wrong check digit" in error.text
    assert "Nothing was saved." in text_of(browser, ".alert.error")
    orcid = browser.find_element(By.ID, "id_creators-0-orcid")
    assert orcid.get_attribute("aria-invalid") == "true"
    assert orcid.get_attribute("value") == "0000-0002-1825-0098"  # what was typed is kept
    screenshot("09-edit-form-orcid-error")
    version.refresh_from_db()
    assert version.title == "Before" and not version.creators.exists()

    # The upload form: a file named .ipynb that is not a notebook.
    broken = tmp_path / "broken.ipynb"
    broken.write_text(json.dumps({"cells": 1}))
    open_page(browser, f"{live_server.url}/uploads/{record_id}/", "Before")
    upload_file(browser, broken)
    [item] = upload_items(browser)
    assert item["path"] == "broken.ipynb" and "failed" in item["state"] and not item["barShown"]
    assert "The notebook has no integer 'nbformat' version" in item["status"]
    screenshot("10-draft-upload-refused")
    assert listed_files(browser) == [] and not version.files.exists()


def test_a_slow_upload_shows_its_progress_and_can_be_cancelled(browser, screenshot, live_server, user, tmp_path,
                                                               upload_checks):
    version = record_create(owner=user, metadata={"title": "Large data"})
    login(browser, live_server, user.username)
    open_page(browser, f"{live_server.url}/uploads/{version.record.public_id}/", "Large data")
    large = tmp_path / "large.csv"
    large.write_bytes(b"0123456789abcde\n" * 65536)  # 1 MB: four seconds at 256 KB/s

    throttle_uploads(browser, 256 * 1024)
    fill_field(browser, "upload-folder", "data")
    browser.find_element(By.ID, "upload-files").send_keys(str(large))
    click(browser, "[data-upload-start]")
    wait_for(browser, lambda b: 10 <= (upload_items(b) or [{}])[0].get("progress", 0) < 80,
             message="the progress bar did not move")
    [item] = upload_items(browser)
    assert item["path"] == "data/large.csv" and item["barShown"] and item["cancelShown"]
    assert " of 1.0 MB" in item["status"]  # "384.0 KB of 1.0 MB"
    assert not browser.find_element(By.CSS_SELECTOR, "[data-upload-start]").is_enabled()
    screenshot("11-draft-upload-in-progress")

    click(browser, "[data-upload-list] .upload-item [data-upload-cancel]")
    wait_for(browser, lambda b: "failed" in upload_items(b)[0]["state"], message="the upload was not cancelled")
    assert upload_items(browser)[0]["status"] == "Cancelled; nothing was stored."
    screenshot("12-draft-upload-cancelled")
    assert listed_files(browser) == [] and not version.files.exists()

    throttle_uploads(browser, None)
    upload_file(browser, large, folder="data")
    wait_for_files(browser, {"data/large.csv"})
    [item] = upload_items(browser)
    assert item["status"] == "Uploaded." and item["progress"] == 100 and item["barShown"]
    assert not item["cancelShown"]  # a finished upload has nothing left to cancel
