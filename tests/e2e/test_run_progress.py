"""An owner watches a run pull its image in Chromium: the report page shows the bytes done / total as the worker
records them, without reloading, and shows the finished run once it ends (static/repository/run_progress.js)."""

import pytest
from django.urls import reverse

from repository.models import ExecutionRun
from repository.services.runs import _finish, _RunObserver, run_request
from tests.e2e.test_notebook_xss import log_in
from tests.factories import UserFactory, demo_draft

pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")
from selenium.webdriver.common.by import By  # after the skip: without selenium the module is skipped
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.django_db(transaction=True)
MB = 1024 * 1024


def test_the_run_page_shows_the_image_pull_as_it_happens(browser, live_server, verification_queue, screenshot):
    owner = UserFactory(username="watcher")
    run = run_request(version=demo_draft(owner), requested_by=owner)
    ExecutionRun.objects.filter(pk=run.pk).update(status=ExecutionRun.Status.RUNNING)
    _RunObserver(run.pk).pull_progress(1 * MB, 4 * MB)
    log_in(browser, live_server, owner)

    browser.get(live_server.url + reverse("repository:run_report", kwargs={"run_id": run.run_id}))
    progress = browser.find_element(By.ID, "pull-progress")
    assert progress.text.startswith("1.0 MB of 4.0 MB")

    _RunObserver(run.pk).pull_progress(3 * MB, 4 * MB)  # the worker moves on; the page is not reloaded
    WebDriverWait(browser, 10).until(EC.text_to_be_present_in_element((By.ID, "pull-progress"), "3.0 MB of 4.0 MB"))
    assert browser.find_element(By.ID, "pull-bar").get_attribute("value") == str(3 * MB)
    screenshot("run-pull-progress", full_page=False)

    run.refresh_from_db()
    _finish(run, verdict="reproduced", message="All outputs identical", environment={"runner": "local"})
    WebDriverWait(browser, 15).until(EC.text_to_be_present_in_element((By.ID, "verdict"), "Reproduced"))
    assert not browser.find_elements(By.ID, "pull-progress")
