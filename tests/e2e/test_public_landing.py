"""A reader who is not signed in opens a published record in Chromium: reads the rendered notebook (a hostile one)
through its table of contents, cannot be reached by anything in it, opens the public reproducibility report from
the verdict, and downloads the citation and the whole version."""

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from repository.models import ExecutionRun, Verdict, Version
from repository.selectors import version_metadata
from repository.services.drafts import draft_update
from tests.e2e.test_notebook_xss import WAIT_SECONDS, assert_no_alert, cell, display, hostile_notebook
from tests.factories import UserFactory, accept, demo_draft, sync_pending, upload

pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")
from selenium.webdriver.common.by import By  # after the skip: without selenium the module is skipped
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def isolated(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    settings.DOI_PROVIDER = "local"
    cache.clear()


def hostile_with_sections() -> bytes:
    import json

    notebook = json.loads(hostile_notebook())
    notebook["cells"] += [cell("markdown", "## Results and discussion\n\nThe fit is good."),
                          cell("code", "summary()", [display({"text/plain": "slope = 1.7e-05 per K"})])]
    return json.dumps(notebook).encode()


@pytest.fixture
def published_record(tmp_path):
    author, admin = UserFactory(username="author"), UserFactory(username="admin", is_superuser=True)
    draft = demo_draft(author, title="Hostile but published")
    upload(draft, author, "hostile.ipynb", hostile_with_sections())
    draft_update(version=draft, actor=author, metadata={**version_metadata(draft), "notebook_path": "hostile.ipynb"})
    version = accept(draft, admin)
    sync_pending()
    version.refresh_from_db()
    assert version.state == Version.State.PUBLISHED
    blob = version.files.get(path="hostile.ipynb").blob
    run = ExecutionRun.objects.create(
        version=version, runner="local", notebook_path="hostile.ipynb", status=ExecutionRun.Status.FINISHED,
        verdict=Verdict.REPRODUCED, message="Every output matches.", finished_at=timezone.now(),
        executed_notebook=blob, report={"summary": {"code_cells": 9, "identical": 9}})
    return version, run


def test_a_reader_reads_the_notebook_and_its_public_report(browser, live_server, published_record, screenshot):
    version, run = published_record
    # Rendered once before, as the moderator's review does: the landing page never waits for the renderer, so
    # its table of contents appears once a rendering exists.
    frame = reverse("repository:version_notebook", kwargs={"record_id": version.record.public_id, "number": 1})
    assert Client().get(frame).status_code == 200
    browser.get(live_server.url + reverse("repository:record_landing",
                                          kwargs={"record_id": version.record.public_id}))
    WebDriverWait(browser, WAIT_SECONDS).until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"),
                                                                                 "Hostile but published"))
    top_title = browser.title
    # The site's own cookie (csrftoken is readable by scripts of the site) is there for the top page...
    browser.add_cookie({"name": "site-secret", "value": "only-for-the-site", "path": "/"})
    assert "site-secret" in browser.execute_script("return document.cookie;")

    frame = browser.find_element(By.ID, "notebook-frame")
    assert frame.get_attribute("sandbox") == ""
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'});", frame)
    browser.switch_to.frame(frame)
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda d: "Every output below tries to run script." in d.find_element(By.TAG_NAME, "body").text)
    assert browser.find_elements(By.ID, "xss-ran") == [] and browser.find_elements(By.TAG_NAME, "script") == []
    assert any((img.get_attribute("src") or "").startswith("data:image/png") and img.size["width"] > 0
               for img in browser.find_elements(By.TAG_NAME, "img"))  # the plot, inline
    # ...but the rendered document lives in an opaque origin: even a script run in it could not read it.
    in_frame = browser.execute_script("try { return document.cookie; } catch (e) { return 'blocked: ' + e.name; }")
    assert in_frame == "blocked: SecurityError"
    browser.switch_to.default_content()
    assert_no_alert(browser)
    assert browser.title == top_title

    # The table of contents opens the frame at a heading.
    toc = browser.find_element(By.ID, "notebook-toc")
    assert [a.text for a in toc.find_elements(By.TAG_NAME, "a")] == ["Hostile payloads", "Results and discussion"]
    toc.find_element(By.LINK_TEXT, "Results and discussion").click()
    browser.switch_to.frame(frame)
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda d: "slope = 1.7e-05 per K" in d.find_element(By.TAG_NAME, "body").text)
    browser.switch_to.default_content()
    screenshot("public-landing-notebook-window", full_page=False)
    browser.execute_script("window.scrollTo(0, 0);")
    screenshot("public-landing")
    badge = browser.find_element(By.ID, "badge-image")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", badge)
    WebDriverWait(browser, WAIT_SECONDS).until(lambda d: badge.size["width"] > 100)  # the SVG loaded
    assert "[![Reproducibility](" in browser.find_element(By.ID, "badge-markdown").get_attribute("value")
    screenshot("public-landing-badge-window", full_page=False)

    # The verdict opens the public report.
    browser.find_element(By.ID, "verdict").click()
    WebDriverWait(browser, WAIT_SECONDS).until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"),
                                                                                 "Reproducibility report"))
    assert "Every output matches." in browser.find_element(By.ID, "verdict").text
    assert browser.current_url.endswith(reverse("repository:run_report", kwargs={"run_id": run.run_id}))
    screenshot("public-run-report")
    browser.find_element(By.ID, "landing-link").click()
    WebDriverWait(browser, WAIT_SECONDS).until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"),
                                                                                 "Hostile but published"))

    # The citation box: pick IEEE.
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element(By.ID, "citation-style")).select_by_visible_text("IEEE")
    browser.find_element(By.CSS_SELECTOR, "#citation-style-form button").click()
    WebDriverWait(browser, WAIT_SECONDS).until(lambda d: "style=ieee" in d.current_url)
    assert "J. Doe" in browser.find_element(By.ID, "citation").text
