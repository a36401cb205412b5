"""The draft page's upload widget over the resumable upload API, in Chromium: two files at once, in parts; the
page is reloaded in the middle (the browser's uploads throttled through the DevTools protocol, so that "the
middle" is a moment the test can wait for: some parts held by the server, others not); choosing the same files
again sends only the missing parts, and both end up listed with their SHA-256. A path with '..' is refused in the
API's own words before a byte is read. No Content-Security-Policy violation on the way.
"""

import hashlib
import os
import re
import time

import pytest
from django.core.exceptions import ValidationError

from repository import upload_storage, validators
from repository.api import uploads as uploads_api
from repository.models import Upload, Version
from tests.e2e.test_content_security_policy import RECORD_VIOLATIONS, violations
from tests.e2e.test_deposit_flow import throttle_uploads, upload_items
from tests.e2e.test_notebook_xss import log_in
from tests.factories import UserFactory, demo_draft

pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")
from selenium.webdriver.common.by import By  # after the skip: without selenium the module is skipped
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.django_db(transaction=True)

MIB = 1024 * 1024
WAIT_SECONDS = 60


@pytest.fixture
def watched(browser):
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_VIOLATIONS})
    return browser


@pytest.fixture
def parts_sent(monkeypatch):
    """(path, part number) of every part the application's part URL received: the local storage's end of the
    protocol, as the browser reached it."""
    sent = []
    real = uploads_api.upload_part_receive

    def recording(**kwargs):
        part = real(**kwargs)
        sent.append((Upload.objects.get(upload_id=kwargs["upload_id"]).path, kwargs["number"]))
        return part
    monkeypatch.setattr(uploads_api, "upload_part_receive", recording)
    return sent


def wait_for(browser, condition, message: str, timeout: float = WAIT_SECONDS):
    return WebDriverWait(browser, timeout, poll_frequency=0.1).until(condition, message=message)


def open_draft(browser, live_server, record_id: str) -> None:
    browser.get(f"{live_server.url}/uploads/{record_id}/")
    wait_for(browser, lambda b: b.find_elements(By.ID, "upload"), "the draft page has no upload form")


def choose_and_upload(browser, paths, folder: str = "") -> None:
    field = browser.find_element(By.ID, "upload-folder")
    field.clear()
    field.send_keys(folder)
    browser.find_element(By.ID, "upload-files").send_keys("\n".join(str(path) for path in paths))
    browser.find_element(By.CSS_SELECTOR, "[data-upload-start]").click()


def listed_checksums(browser) -> dict[str, str]:
    """The draft page's file list, path -> SHA-256, read at once (upload.js swaps the list in when it changes)."""
    return browser.execute_script("""
        var shown = {};
        document.querySelectorAll('#file-list table.files tbody tr').forEach(function (row) {
          shown[row.querySelector('td a').textContent] = row.querySelector('code').title;
        });
        return shown;""")


def held_parts(version: Version) -> dict[str, set[int]]:
    return {upload.path: {part.number for part in upload_storage.received_parts(upload.storage_key,
                                                                                upload.multipart_id)}
            for upload in Upload.objects.filter(version=version, state=Upload.State.UPLOADING)}


def test_two_files_survive_a_reload_mid_upload_and_resume_with_only_the_missing_parts(
        watched, live_server, settings, tmp_path, upload_checks, parts_sent):
    browser = watched
    settings.UPLOAD_PART_SIZE = 5 * MIB  # the smallest S3 allows: two parts per file
    author = UserFactory(username="resuming-author")
    draft = demo_draft(author)
    record_id = draft.record.public_id
    files = {}
    for name in ("first.bin", "second.bin"):
        path = tmp_path / name
        path.write_bytes(os.urandom(6 * MIB))  # a 5 MiB part and a 1 MiB one
        files[name] = path
    log_in(browser, live_server, author)
    open_draft(browser, live_server, record_id)

    # 1 MB/s for four parts in flight: the 1 MiB parts arrive after about 4 s, the 5 MiB ones much later.
    throttle_uploads(browser, 1_000_000)
    choose_and_upload(browser, files.values(), folder="raw")
    wait_for(browser, lambda b: all(items["progress"] > 0 for items in upload_items(b)) and len(upload_items(b)) == 2,
             "the uploads never started")
    wait_for(browser, lambda b: re.search(r" of 12\.0 MB · [\d.]+ [KM]B/s · about \d+ s left$", b.execute_script(
        "return document.querySelector('[data-upload-summary-text]').textContent")),
             "the speed and the time left were not shown")
    wait_for(browser, lambda b: held_parts(draft) == {"raw/first.bin": {2}, "raw/second.bin": {2}},
             "the small parts never arrived alone", timeout=20)

    browser.refresh()  # mid-upload: each file's large part is in flight
    wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "[data-upload-unfinished] li"),
             "the page does not offer to resume")
    offered = [item.text for item in browser.find_elements(By.CSS_SELECTOR, "[data-upload-unfinished] li")]
    assert sorted(text.split()[0] for text in offered) == ["raw/first.bin", "raw/second.bin"], offered
    assert not Version.objects.get(pk=draft.pk).files.filter(path__startswith="raw/").exists()
    time.sleep(0.5)
    held_at_reload = held_parts(draft)
    assert held_at_reload == {"raw/first.bin": {2}, "raw/second.bin": {2}}, held_at_reload
    sent_before = list(parts_sent)

    throttle_uploads(browser, None)
    choose_and_upload(browser, files.values(), folder="raw")
    wait_for(browser, lambda b: [i["state"] for i in upload_items(b)] == ["upload-item done"] * 2,
             "the resumed uploads did not finish")
    wait_for(browser, lambda b: {"raw/first.bin", "raw/second.bin"} <= set(listed_checksums(b)),
             "the file list never showed both files")

    # Only the parts the server did not hold were sent again.
    assert sorted(parts_sent[len(sent_before):]) == [("raw/first.bin", 1), ("raw/second.bin", 1)]
    stored = {f.path: f.blob.sha256 for f in Version.objects.get(pk=draft.pk).files.filter(path__startswith="raw/")}
    assert stored == {f"raw/{name}": hashlib.sha256(path.read_bytes()).hexdigest() for name, path in files.items()}
    shown = listed_checksums(browser)
    assert {path: shown[path] for path in stored} == stored
    assert not browser.find_elements(By.CSS_SELECTOR, "[data-upload-unfinished] li")
    assert browser.execute_script("return Object.keys(localStorage).length") == 0
    assert violations(browser) == []


def test_a_path_with_dot_dot_is_refused_in_the_apis_words_before_sending(watched, live_server, tmp_path, parts_sent):
    browser = watched
    author = UserFactory(username="climbing-author")
    draft = demo_draft(author)
    data = tmp_path / "secrets.csv"
    data.write_text("a,b\n1,2\n")
    log_in(browser, live_server, author)
    open_draft(browser, live_server, draft.record.public_id)

    choose_and_upload(browser, [data], folder="data/../..")
    wait_for(browser, lambda b: [i["state"] for i in upload_items(b)] == ["upload-item failed"],
             "the upload was not refused")
    with pytest.raises(ValidationError) as refused:
        validators.validate_file_path("data/../../secrets.csv")
    [item] = upload_items(browser)
    assert item["status"] == refused.value.messages[0]  # the API's own message, not "The server answered 404"
    assert not item["barShown"]
    assert not Upload.objects.exists() and parts_sent == []
    assert violations(browser) == []


def test_an_upload_goes_on_when_the_network_comes_back(watched, live_server, settings, tmp_path, upload_checks,
                                                       parts_sent):
    browser = watched
    settings.UPLOAD_PART_SIZE = 5 * MIB
    author = UserFactory(username="offline-author")
    draft = demo_draft(author)
    data = tmp_path / "field.bin"
    data.write_bytes(os.urandom(6 * MIB))
    log_in(browser, live_server, author)
    open_draft(browser, live_server, draft.record.public_id)

    throttle_uploads(browser, 1_000_000)
    choose_and_upload(browser, [data], folder="raw")
    wait_for(browser, lambda b: held_parts(draft) == {"raw/field.bin": {2}}, "the small part never arrived alone",
             timeout=20)
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", {
        "offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    wait_for(browser, lambda b: "dropped" in upload_items(b)[0]["status"], "the drop was not shown")
    throttle_uploads(browser, None)  # back online, at full speed
    wait_for(browser, lambda b: [i["state"] for i in upload_items(b)] == ["upload-item done"],
             "the upload did not go on")
    assert sorted(parts_sent) == [("raw/field.bin", 1), ("raw/field.bin", 2)]  # part 2 was not sent twice
    [stored] = Version.objects.get(pk=draft.pk).files.filter(path="raw/field.bin")
    assert stored.blob.sha256 == hashlib.sha256(data.read_bytes()).hexdigest()
    assert violations(browser) == []
